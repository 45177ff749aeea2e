"""The live dashboard: deployments, positions, orders, fills, P&L against the backtest, risk
state, the limits in use and the outbox's delivery state, in one browser page refreshed live.

:func:`dashboard_app` returns a Starlette app; ``alpaca-improved signals serve`` mounts it under
``/dashboard``, and it runs alone under any ASGI server::

    uvicorn --factory 'signals.dashboard.standalone:app' --host 127.0.0.1

It reads the runner's journal read-only, the lake's ``live_pnl`` / ``backtest_runs`` /
``live_replay`` tables and the signals database's outbox; no route writes anything. Secrets are
never rendered (:mod:`signals.dashboard.redact`); basic auth is optional
(:mod:`signals.dashboard.auth`). Without auth, serve it on 127.0.0.1 only.
"""

from signals.dashboard.app import dashboard_app

__all__ = ["dashboard_app"]
