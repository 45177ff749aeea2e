"""The live runner: approved deployments -> ``decide()`` -> risk engine -> broker, journaled.

A separate process that never imports dagster or the pipelines (only ``strategies``). Entry
points: :data:`live.cli.app` (``alpaca-improved live run|halt|flatten|resume|status``, also
``python -m live.cli``) and :func:`live.build.build_runner`. Layout:

* ``journal.py`` / ``journal_orders.py`` - the SQLite (WAL, synchronous=FULL) write-ahead journal;
* ``ids.py`` - deterministic client order ids; ``orders.py`` - the order state machine;
* ``risk.py`` / ``risk_rules.py`` / ``risk_limits.py`` - the risk engine and its frozen limits;
* ``brokers/`` - the :class:`~live.brokers.base.Broker` contract, ``sim`` and ``alpaca``;
* ``order_manager.py`` / ``reconcile.py`` - sending, lookups, fills, reconciliation;
* ``runner.py`` and its steps - the cycle; ``health.py``, ``notify.py`` - operations.
"""
