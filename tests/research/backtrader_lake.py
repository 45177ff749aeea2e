"""A small synthetic lake for the backtrader tests: a year of daily bars for three symbols and
two sessions of minute bars resampled into 5-minute and hourly bars (as the pipelines do)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.resample import resample_minutes
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars, minute_bars

SYMBOLS = ("SPY", "AAPL", "XOM")
SESSIONS = cal.sessions_between(dt.date(2024, 1, 2), dt.date(2024, 12, 31))
# a regular session and the early close after Thanksgiving (13:00 New York)
INTRADAY = (dt.date(2024, 11, 27), dt.date(2024, 11, 29))


def build_lake(home: Path) -> Path:
    """Write the lake under ``home`` and return ``home``."""
    lake = home / "lake"
    for s in SESSIONS:
        storage.write_partition(daily_bars(7, SYMBOLS, s), lake, "stock_bars_1d", s, fsync=False)
    for s in INTRADAY:
        minutes = minute_bars(7, SYMBOLS, s)
        storage.write_partition(minutes, lake, "stock_bars_1m", s, fsync=False)
        for table, every in (("stock_bars_5m", "5m"), ("stock_bars_1h", "1h")):
            bars = resample_minutes(minutes, every)
            storage.write_partition(bars, lake, table, s, fsync=False)
    return home
