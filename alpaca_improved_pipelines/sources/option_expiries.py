"""Listed US equity option expiries: weekly Fridays, monthly third Fridays, quarterlies, LEAPS.

A nominal Friday expiry that falls on an exchange holiday (Good Friday, Juneteenth, ...) expires
on the previous session instead, as the OCC lists it. Used by the synthetic chain generator and,
through :func:`is_monthly`, to label any source's expiries.
"""

from __future__ import annotations

import datetime as dt

from alpaca_improved_pipelines import calendar as cal

QUARTER_MONTHS = (3, 6, 9, 12)
LEAPS_MONTH = 1  # January LEAPS-style series


def third_friday(year: int, month: int) -> dt.date:
    """The third Friday of ``month`` (the nominal monthly expiry)."""
    day = dt.date(year, month, 15)  # the third Friday is always the 15th-21st
    return day + dt.timedelta(days=(4 - day.weekday()) % 7)


def listed_expiry(nominal: dt.date) -> dt.date | None:
    """The session an option with nominal expiry ``nominal`` expires on (None past the calendar).

    A holiday moves the expiry to the previous session.
    """
    if nominal > cal.CALENDAR_END:
        return None
    return nominal if cal.is_session(nominal) else cal.previous_session(nominal)


def is_monthly(expiry: dt.date) -> bool:
    """True when ``expiry`` is its month's standard (third-Friday) expiry, holiday-adjusted."""
    return listed_expiry(third_friday(expiry.year, expiry.month)) == expiry


def _months_after(session: dt.date, count: int) -> list[tuple[int, int]]:
    months = []
    y, m = session.year, session.month
    for _ in range(count):
        months.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return months


def monthly_expiries(session: dt.date, count: int = 6, front: int = 3) -> list[dt.date]:
    """Monthly expiries after ``session``: the next ``front`` months, then quarterlies and
    January LEAPS-style series, ``count`` in all (about a year out for the defaults)."""
    out: list[dt.date] = []
    for y, m in _months_after(session, 30):
        listed = listed_expiry(third_friday(y, m))
        if listed is None or listed <= session:
            continue
        if len(out) < front or m in QUARTER_MONTHS or m == LEAPS_MONTH:
            out.append(listed)
        if len(out) == count:
            break
    return out


def weekly_expiries(session: dt.date, count: int = 6) -> list[dt.date]:
    """The next ``count`` Friday expiries strictly after ``session`` (holiday-adjusted)."""
    ahead = (4 - session.weekday()) % 7 or 7
    first = session + dt.timedelta(days=ahead)
    out = []
    for j in range(count):
        listed = listed_expiry(first + dt.timedelta(days=7 * j))
        if listed is not None and listed > session:
            out.append(listed)
    return out


def expiries(session: dt.date, weeklies: int = 6, monthlies: int = 6) -> list[dt.date]:
    """Every listed expiry of a chain on ``session``: weeklies and monthlies, ascending, unique."""
    return sorted(
        set(weekly_expiries(session, weeklies)) | set(monthly_expiries(session, monthlies))
    )
