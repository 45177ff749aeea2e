"""Multi-timeframe signals on a synthetic lake: the hourly values are the lake's own
``stock_bars_1h`` bars (written by the pipeline's resampler), the daily value appears only at
the 13:00 early close, and a lake without minute bars gives one clear error."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from research import lakehouse
from research.timeframes import LakeTimeframeError, lake_multi_timeframe, session_bounds
from strategies.indicators.timeframes import AllAgree, Signal

from .backtrader_lake import INTRADAY, SYMBOLS, build_lake

NY = ZoneInfo("America/New_York")
LEVEL = Signal("level", lambda: pl.col("close"), 0.0, 0.0)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lake(tmp_path_factory.mktemp("tf_lake"))


def test_session_bounds_respect_the_early_close() -> None:
    bounds = session_bounds(INTRADAY)
    closes = bounds.get_column("close").dt.convert_time_zone("America/New_York").dt.hour()
    assert closes.to_list() == [16, 13]


def test_values_come_from_the_lakes_bars_as_of_their_close(home: Path) -> None:
    half = INTRADAY[1]
    moments = [
        dt.datetime.combine(half, dt.time(12, 45), NY),
        dt.datetime.combine(half, dt.time(13, 0), NY),
    ]
    times = pl.DataFrame(
        {"symbol": [s for s in SYMBOLS for _ in moments], "t": moments * len(SYMBOLS)},
        schema_overrides={"t": pl.Datetime("us", "UTC")},
    )
    got = lake_multi_timeframe(home, SYMBOLS, INTRADAY[0], half, LEVEL, times, AllAgree())
    with lakehouse.connect(home, warn=False) as con:
        hourly = con.sql(
            "SELECT symbol, ts, close FROM stock_bars_1h WHERE session = $s ORDER BY symbol, ts",
            params={"s": half},
        ).pl()
        minutes = con.sql(
            "SELECT symbol, session, ts, close FROM stock_bars_1m ORDER BY symbol, ts"
        ).pl()
    for symbol in SYMBOLS:
        rows = got.filter(pl.col("symbol") == symbol)
        lake_hours = hourly.filter(pl.col("symbol") == symbol).get_column("close").to_list()
        day_closes = (
            minutes.filter(pl.col("symbol") == symbol)
            .group_by("session", maintain_order=True)
            .agg(pl.col("close").last())
            .get_column("close")
            .to_list()
        )
        # 12:45: the lake's 11:30-12:30 hour, the previous session's daily close
        # 13:00 (the early close): the 12:30-13:00 hour and the half day's own daily bar
        assert rows.get_column("value_1h").to_list() == [lake_hours[2], lake_hours[3]]
        assert rows.get_column("value_1d").to_list() == day_closes
        assert len(lake_hours) == 4


def test_a_lake_without_minute_bars_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    times = pl.DataFrame(
        {"symbol": ["SPY"], "t": [dt.datetime(2024, 11, 29, 18, tzinfo=dt.UTC)]},
        schema_overrides={"t": pl.Datetime("us", "UTC")},
    )
    with pytest.raises(LakeTimeframeError, match="no stock_bars_1m partitions"):
        lake_multi_timeframe(tmp_path, ["SPY"], INTRADAY[0], INTRADAY[1], LEVEL, times, AllAgree())
