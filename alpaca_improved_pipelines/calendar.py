"""The NYSE trading calendar, re-exported from :mod:`contracts.calendar` (its one home).

The code location keeps importing ``alpaca_improved_pipelines.calendar as cal``; the calendar,
its one horizon and its errors (:class:`contracts.errors.ContractError`, which this package's
``ConfigError`` also subclasses) live in the contracts leaf the live runner reads too.
"""

from __future__ import annotations

from contracts.calendar import (
    CALENDAR_END,
    CALENDAR_START,
    NEW_YORK,
    UTC,
    all_sessions,
    is_early_close,
    is_session,
    midnight_new_york,
    new_york_date,
    next_session,
    nyse,
    parse_date,
    previous_session,
    require_session,
    session_index,
    session_open_close,
    sessions_between,
    weekday_closures,
)

__all__ = [
    "CALENDAR_END",
    "CALENDAR_START",
    "NEW_YORK",
    "UTC",
    "all_sessions",
    "is_early_close",
    "is_session",
    "midnight_new_york",
    "new_york_date",
    "next_session",
    "nyse",
    "parse_date",
    "previous_session",
    "require_session",
    "session_index",
    "session_open_close",
    "sessions_between",
    "weekday_closures",
]
