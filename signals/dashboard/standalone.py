"""The dashboard alone, for ``uvicorn --factory signals.dashboard.standalone:app``: the data
root from ``ALPACA_IMPROVED_HOME`` and the signals database from the same settings the service
uses (:func:`signals.db.make_engine`)."""

from __future__ import annotations

from starlette.applications import Starlette

from contracts import paths
from signals.dashboard.app import dashboard_app
from signals.db import make_engine


def app() -> Starlette:
    """The dashboard of the configured data root (an ASGI app factory)."""
    home = paths.home_from_env()
    return dashboard_app(home, make_engine(home))
