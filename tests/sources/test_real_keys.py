"""Opt-in checks against the real vendor APIs (``ALPACA_IMPROVED_REAL_KEYS=1`` plus keys).

Read-only market-data calls on sessions a week old, so a free plan's recent-data window does
not apply; nothing here trades.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.sources.vendors.alpaca import AlpacaSource
from alpaca_improved_pipelines.sources.vendors.polygon import PolygonSource

pytestmark = pytest.mark.real_keys


def recent_session() -> dt.date:
    return cal.previous_session(dt.datetime.now(cal.NEW_YORK).date() - dt.timedelta(days=7))


def need(*names: str) -> None:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip(f"set {', '.join(missing)}")


def test_alpaca_bars_and_contracts() -> None:
    need("ALPACA_API_KEY", "ALPACA_SECRET_KEY")
    src = AlpacaSource(feed=os.environ.get("ALPACA_FEED", "iex"))
    session = recent_session()
    daily = src.stock_bars(("SPY", "AAPL"), session, "1Day")
    assert daily.height == 2 and set(daily["session"]) == {session}
    assert daily["ts"][0] == cal.midnight_new_york(session)
    minutes = src.stock_bars(("SPY",), session, "1Min")
    assert 300 <= minutes.height <= 390
    assert src.option_contracts("SPY", dt.datetime.now(cal.NEW_YORK).date()).height > 0


def test_polygon_daily_aggregates() -> None:
    need("POLYGON_API_KEY")
    src = PolygonSource(requests_per_minute=5)  # the free plan's budget
    session = recent_session()
    daily = src.stock_bars(("SPY",), session, "1Day")
    assert daily.height == 1 and daily["ts"][0] == cal.midnight_new_york(session)
