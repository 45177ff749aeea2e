"""The live runner: approved deployments -> ``decide()`` -> risk engine -> broker, journaled.

A separate process that never imports dagster or the pipelines (only ``strategies`` and the
``contracts`` leaf: its manifest, limits, calendar and paths). Entry points: :data:`live.cli.app`
(``alpaca-improved live run|halt|flatten|resume|status|replay``, also ``python -m live.cli``) and
:func:`live.runner.build.build_runner`. Subpackages, one per seam:

* ``runner/`` - configuration, build, the cycle (``core``) and its steps, the data-root lock,
  the halt file and command queue (``control``), health and status;
* ``orders/`` - deterministic client ids, the order state machine, sending and lookups
  (``manager``), the send window, fills, reconciliation, liquidation, broker report types;
* ``journal/`` - the SQLite (WAL, synchronous=FULL) write-ahead journal and its row codecs;
* ``risk/`` - the risk engine (ACTIVE / REDUCING / HALTED), its inputs and rules (limits:
  :mod:`contracts.limits`);
* ``brokers/`` - the :class:`~live.brokers.base.Broker` contract, ``sim`` and ``alpaca``, the
  shared request budget;
* ``deployments/`` - manifests on disk and the active set; ``market/`` - lake snapshots;
* ``book.py`` (per-deployment books over :mod:`strategies.accounting`), ``clock.py``,
  ``notify.py``, ``replay.py``, ``errors.py``.
"""
