"""Trading-session partitions: NYSE sessions in America/New_York, holidays excluded."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.settings import load_settings, require_not_future


def trading_sessions_def(start: dt.date) -> dg.TimeWindowPartitionsDefinition:
    """Weekday partitions from ``start`` with every NYSE weekday closure excluded.

    ``end_offset=1`` makes today's session a partition as soon as the day starts, so the
    after-close schedule can target it the same evening.
    """
    start = cal.require_session(start, "partition start")
    closures = cal.weekday_closures(start, cal.CALENDAR_END)
    return dg.TimeWindowPartitionsDefinition(
        start=dt.datetime(start.year, start.month, start.day, tzinfo=cal.NEW_YORK),
        fmt="%Y-%m-%d",
        cron_schedule="0 0 * * 1-5",
        timezone="America/New_York",
        end_offset=1,
        exclusions=[dt.datetime(d.year, d.month, d.day, tzinfo=cal.NEW_YORK) for d in closures],
    )


trading_sessions = trading_sessions_def(load_settings().start)


def keys_to_sessions(keys: list[str] | tuple[str, ...]) -> list[dt.date]:
    """Partition keys (YYYY-MM-DD) to dates, ascending.

    A run for a session after today (New York) fails here, before anything is written: no
    market data exists for it, and made-up bars would be traded on.
    """
    sessions = sorted(dt.date.fromisoformat(k) for k in keys)
    if sessions:
        try:
            require_not_future(sessions[-1], "partition")
        except ConfigError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
    return sessions
