"""The nightly schedule targets the right session on either side of DST changes."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from alpaca_improved_pipelines.calendar import NEW_YORK
from alpaca_improved_pipelines.defs.market_data.schedules import nightly_market_data


def _evaluate(instance: dg.DagsterInstance, when: dt.datetime) -> dg.RunRequest | dg.SkipReason:
    ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
    result = nightly_market_data(ctx)
    return result


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (
            dt.datetime(2024, 3, 8, 18, 30, tzinfo=NEW_YORK),
            "2024-03-08",
        ),  # Friday before spring-forward (EST)
        (dt.datetime(2024, 3, 11, 18, 30, tzinfo=NEW_YORK), "2024-03-11"),  # Monday after (EDT)
        (
            dt.datetime(2024, 11, 1, 18, 30, tzinfo=NEW_YORK),
            "2024-11-01",
        ),  # Friday before fall-back (EDT)
        (dt.datetime(2024, 11, 4, 18, 30, tzinfo=NEW_YORK), "2024-11-04"),  # Monday after (EST)
        (dt.datetime(2024, 11, 29, 18, 30, tzinfo=NEW_YORK), "2024-11-29"),  # half day
    ],
)
def test_tick_targets_that_evenings_session(
    instance: dg.DagsterInstance, local: dt.datetime, expected: str
) -> None:
    result = _evaluate(instance, local)
    assert isinstance(result, dg.RunRequest)
    assert result.partition_key == expected
    assert result.run_key == f"nightly:{expected}"


def test_tick_in_utc_after_midnight_still_targets_new_york_session(
    instance: dg.DagsterInstance,
) -> None:
    # 18:30 EDT on 2024-07-05 is 22:30 UTC; 18:30 EST on 2024-12-06 is 23:30 UTC same day.
    when = dt.datetime(2024, 12, 6, 23, 30, tzinfo=dt.UTC)
    result = _evaluate(instance, when)
    assert isinstance(result, dg.RunRequest) and result.partition_key == "2024-12-06"


@pytest.mark.parametrize(
    "holiday",
    [
        dt.datetime(2024, 7, 4, 18, 30, tzinfo=NEW_YORK),
        dt.datetime(2025, 1, 9, 18, 30, tzinfo=NEW_YORK),
    ],
)
def test_holiday_ticks_skip(instance: dg.DagsterInstance, holiday: dt.datetime) -> None:
    result = _evaluate(instance, holiday)
    assert isinstance(result, dg.SkipReason)
    assert "not an NYSE session" in (result.skip_message or "")


def test_cron_fires_after_the_close_in_new_york() -> None:
    assert nightly_market_data.cron_schedule == "30 18 * * 1-5"
    assert nightly_market_data.execution_timezone == "America/New_York"
