"""Expected versus unexpected empty answers: when "no data" is a fact rather than a failure.

A vendor that answers a trading session with no rows is failing (bad JSON swallowed by a client,
an unknown symbol, a gap) unless the calendar or the vendor's coverage says there is nothing to
have: an exchange holiday, a date before the vendor's history starts, or the most recent minutes
that a free plan may not query. Expected empties are recorded (``EmptyRecord``) and logged;
unexpected ones raise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from alpaca_improved_pipelines import calendar as cal

# First session each vendor serves, per dataset (public docs; Alpaca options: February 2024).
HISTORY_START: dict[tuple[str, str], dt.date] = {
    ("alpaca", "stock_bars"): dt.date(2016, 1, 4),
    ("alpaca", "option_bars"): dt.date(2024, 2, 1),
    ("alpaca", "option_chain"): dt.date(2024, 2, 1),
    ("polygon", "stock_bars"): dt.date(2003, 9, 10),
    ("polygon", "option_chain"): dt.date(2014, 6, 2),
}
# Free plans may not query the most recent window of consolidated data.
RECENT_WINDOW = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class EmptyRecord:
    """One expected-empty answer: what was asked, and why nothing is the right answer."""

    vendor: str
    dataset: str
    session: dt.date
    reason: str

    def __str__(self) -> str:
        return f"{self.vendor} {self.dataset} {self.session.isoformat()}: {self.reason}"


def expected_empty_reason(vendor: str, dataset: str, session: dt.date) -> str | None:
    """Why an empty answer for ``session`` is expected, or None when it would be a failure."""
    if not cal.is_session(session):
        return "not an NYSE trading session (weekend or holiday)"
    start = HISTORY_START.get((vendor, dataset))
    if start is not None and session < start:
        return f"before {vendor}'s {dataset} history, which starts {start.isoformat()}"
    return None


def in_recent_window(session: dt.date, now: dt.datetime) -> bool:
    """True when ``session`` has not closed at least RECENT_WINDOW before ``now``."""
    if not cal.is_session(session):
        return False
    _, close = cal.session_open_close(session)
    return now < close.to_pydatetime() + RECENT_WINDOW


def is_plan_window_error(message: str) -> bool:
    """True for the 'your plan cannot query recent data' answers (Alpaca SIP, Polygon plans)."""
    text = " ".join(message.split()).lower()
    return (
        "subscription does not permit querying recent" in text
        or "plan doesn't include this data timeframe" in text
    )
