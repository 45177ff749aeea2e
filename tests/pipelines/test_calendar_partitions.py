"""Partitions are NYSE sessions: holidays and one-off closures out, half days in."""

from __future__ import annotations

import datetime as dt

import exchange_calendars as xcals
import pandas as pd
import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.defs.market_data.partitions import trading_sessions_def
from alpaca_improved_pipelines.sources.synthetic_bars import minute_bars
from contracts.errors import ContractError

NOW = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def keys() -> list[str]:
    return trading_sessions_def(dt.date(2024, 1, 2)).get_partition_keys(current_time=NOW)


@pytest.mark.parametrize(
    "holiday",
    [
        "2024-01-15",
        "2024-03-29",
        "2024-07-04",
        "2024-12-25",
        "2025-01-09",
        "2025-04-18",
        "2025-11-27",
    ],
)
def test_holidays_and_one_off_closures_are_not_partitions(keys: list[str], holiday: str) -> None:
    assert holiday not in keys


@pytest.mark.parametrize("half_day", ["2024-07-03", "2024-11-29", "2024-12-24", "2025-07-03"])
def test_half_days_are_partitions(keys: list[str], half_day: str) -> None:
    assert half_day in keys
    assert cal.is_early_close(dt.date.fromisoformat(half_day))


def test_partition_keys_equal_exchange_calendar_sessions(keys: list[str]) -> None:
    ref = xcals.get_calendar("XNYS", start="2024-01-02", end="2026-01-14")
    expected = [d.strftime("%Y-%m-%d") for d in ref.sessions]
    assert keys == expected
    assert not any(pd.Timestamp(k).weekday() >= 5 for k in keys)


def test_minute_bars_respect_early_close() -> None:
    half = minute_bars(7, ("SPY",), dt.date(2024, 11, 29))
    full = minute_bars(7, ("SPY",), dt.date(2024, 11, 27))
    last_half = half["ts"].max().astimezone(cal.NEW_YORK)
    assert (last_half.hour, last_half.minute) <= (12, 59)
    assert half.height <= 210 < full.height <= 390
    first = full["ts"].min().astimezone(cal.NEW_YORK)
    assert (first.hour, first.minute) == (9, 30)


def test_non_session_is_a_clear_error() -> None:
    with pytest.raises(ContractError, match="2024-07-04 is not an NYSE trading session.*07-03"):
        cal.require_session(dt.date(2024, 7, 4), "--start")


def test_partition_start_must_be_a_session() -> None:
    with pytest.raises(ContractError, match="partition start 2024-01-01"):
        trading_sessions_def(dt.date(2024, 1, 1))


def test_daily_stamp_is_midnight_new_york_across_dst() -> None:
    assert cal.midnight_new_york(dt.date(2024, 3, 8)).hour == 5  # EST
    assert cal.midnight_new_york(dt.date(2024, 3, 11)).hour == 4  # EDT
    assert cal.midnight_new_york(dt.date(2024, 11, 4)).hour == 5
