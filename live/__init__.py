"""The live runner: approved deployments -> ``decide()`` -> risk engine -> broker, journaled.

A separate process that never imports dagster or the pipelines (only ``strategies`` and the
``contracts`` leaf: its manifest, limits, calendar and paths). Entry
points: :data:`live.cli.app` (``alpaca-improved live run|halt|flatten|resume|status``, also
``python -m live.cli``) and :func:`live.build.build_runner`. Layout:

* ``journal.py`` / ``journal_orders.py`` - the SQLite (WAL, synchronous=FULL) write-ahead journal;
* ``ids.py`` - deterministic client order ids; ``orders.py`` - the order state machine;
* ``risk.py`` / ``risk_rules.py`` - the risk engine (limits: :mod:`contracts.limits`);
* ``brokers/`` - the :class:`~live.brokers.base.Broker` contract, ``sim`` and ``alpaca``;
* ``order_manager.py`` / ``reconcile.py`` - sending, lookups, fills, reconciliation;
* ``runner.py`` and its steps - the cycle; ``health.py``, ``notify.py`` - operations.
"""
