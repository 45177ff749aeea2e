"""The NYSE trading calendar with one fixed horizon: sessions in New York, holidays, one-off
closures, early closes.

Built on exchange_calendars' ``XNYS`` with an explicit horizon (its default horizon moves with the
wall clock, which would make partition sets and synthetic data depend on the day they were made).
The pipelines (partitions, synthetic data, vendors) and the live runner (market hours of the
simulated clock) both read this one calendar.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from contracts.errors import ContractError

if TYPE_CHECKING:
    import exchange_calendars as xcals

NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC
# The horizon every session index is counted from: the start is fixed forever (the synthetic
# data's RNG counters are session ordinals from it); the end bounds partitions and market hours.
CALENDAR_START = dt.date(2000, 1, 3)
CALENDAR_END = dt.date(2035, 12, 31)


@lru_cache(maxsize=1)
def nyse() -> xcals.ExchangeCalendar:
    """The XNYS calendar over the fixed horizon [CALENDAR_START, CALENDAR_END]."""
    import exchange_calendars as xcals  # ~0.5 s to build: once per process, only when used

    return xcals.get_calendar(
        "XNYS", start=CALENDAR_START.isoformat(), end=CALENDAR_END.isoformat()
    )


@lru_cache(maxsize=1)
def _session_array() -> np.ndarray:
    return nyse().sessions.values.astype("datetime64[D]")


def _check_horizon(day: dt.date, what: str) -> None:
    if not CALENDAR_START <= day <= CALENDAR_END:
        raise ContractError(
            f"{what} {day.isoformat()} is outside the supported calendar "
            f"{CALENDAR_START.isoformat()}..{CALENDAR_END.isoformat()}; choose a date inside it"
        )


def parse_date(value: str | dt.date, what: str = "date") -> dt.date:
    """Parse ``YYYY-MM-DD`` (or pass a date through), raising a ContractError naming ``what``."""
    if isinstance(value, dt.datetime):
        raise ContractError(f"{what} must be a calendar date, got the datetime {value!r}")
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ContractError(
            f"{what} {value!r} is not a date; use YYYY-MM-DD, e.g. 2024-03-15"
        ) from None


def is_session(day: dt.date) -> bool:
    """True when the NYSE is open on ``day``."""
    _check_horizon(day, "date")
    arr = _session_array()
    i = np.searchsorted(arr, np.datetime64(day, "D"))
    return bool(i < len(arr) and arr[i] == np.datetime64(day, "D"))


def require_session(day: dt.date, what: str = "date") -> dt.date:
    """Return ``day`` if it is a session, else raise naming the nearest sessions around it."""
    if is_session(day):
        return day
    before = previous_session(day)
    after = next_session(day)
    raise ContractError(
        f"{what} {day.isoformat()} is not an NYSE trading session (weekend or holiday); "
        f"use {before.isoformat()} or {after.isoformat()}"
    )


def sessions_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """All sessions in the closed interval [start, end], ascending."""
    _check_horizon(start, "start")
    _check_horizon(end, "end")
    if start > end:
        raise ContractError(f"start {start.isoformat()} is after end {end.isoformat()}; swap them")
    arr = _session_array()
    lo = np.searchsorted(arr, np.datetime64(start, "D"), side="left")
    hi = np.searchsorted(arr, np.datetime64(end, "D"), side="right")
    return [d.astype(dt.date) for d in arr[lo:hi]]


def session_index(day: dt.date) -> int:
    """Ordinal of session ``day`` since CALENDAR_START (0-based): the synthetic RNG counter."""
    arr = _session_array()
    i = int(np.searchsorted(arr, np.datetime64(day, "D")))
    if i >= len(arr) or arr[i] != np.datetime64(day, "D"):
        require_session(day)
    return i


def all_sessions() -> np.ndarray:
    """Every session of the fixed horizon as ``datetime64[D]`` (read-only view)."""
    return _session_array()


def previous_session(day: dt.date) -> dt.date:
    """The last session strictly before ``day``."""
    arr = _session_array()
    i = int(np.searchsorted(arr, np.datetime64(day, "D"), side="left")) - 1
    if i < 0:
        raise ContractError(f"no session before {day.isoformat()} in the supported calendar")
    return arr[i].astype(dt.date)


def next_session(day: dt.date) -> dt.date:
    """The first session strictly after ``day``."""
    arr = _session_array()
    i = int(np.searchsorted(arr, np.datetime64(day, "D"), side="right"))
    if i >= len(arr):
        raise ContractError(f"no session after {day.isoformat()} in the supported calendar")
    return arr[i].astype(dt.date)


def session_open_close(day: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Regular-hours open and close of ``day`` as UTC timestamps (early closes respected)."""
    cal = nyse()
    ts = pd.Timestamp(day)
    return cal.session_open(ts), cal.session_close(ts)


def is_early_close(day: dt.date) -> bool:
    """True when ``day`` closes early (13:00 New York)."""
    opn, cls = session_open_close(day)
    return (cls - opn) < pd.Timedelta(hours=6, minutes=30)


def weekday_closures(start: dt.date, end: dt.date) -> list[dt.date]:
    """Weekdays in [start, end] on which the NYSE is closed (holidays and one-off closures)."""
    days = pd.bdate_range(start, end).date
    sessions = set(sessions_between(start, end))
    return [d for d in days if d not in sessions]


def midnight_new_york(day: dt.date) -> dt.datetime:
    """00:00 America/New_York on ``day`` as an aware UTC datetime: how vendors stamp daily bars."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).astimezone(UTC)


def new_york_date(ts: dt.datetime) -> dt.date:
    """The New York calendar date of an aware timestamp."""
    if ts.tzinfo is None:
        raise ContractError(f"timestamp {ts!r} has no timezone; pass an aware datetime")
    return ts.astimezone(NEW_YORK).date()
