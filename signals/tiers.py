"""When a tier may see a signal: ``not_before(event_ts, tier)``, one rule for every recipient.

A delayed tier is *provably* never early: the outbox stores this value on each row and the
dispatcher's claim query selects only rows with ``not_before <= now`` (the property test in
``tests/signals`` checks every (event, recipient) pair). End-of-day tiers wait for the close of
the NYSE session the event belongs to (early closes respected, through :mod:`contracts.calendar`).
"""

from __future__ import annotations

import datetime as dt

from contracts import calendar
from signals.model import Tier


def not_before(event_ts: dt.datetime, tier: Tier) -> dt.datetime:
    """The earliest UTC time a subscriber of ``tier`` may receive an event stamped ``event_ts``."""
    if event_ts.tzinfo is None:
        raise ValueError("event_ts must be timezone-aware")
    ts = event_ts.astimezone(dt.UTC)
    if tier.end_of_day:
        ts = _session_close_at_or_after(ts)
    return ts + dt.timedelta(minutes=tier.delay_minutes)


def _session_close_at_or_after(ts: dt.datetime) -> dt.datetime:
    """The first NYSE session close at or after ``ts`` (the same day's close during a session)."""
    day = calendar.new_york_date(ts)
    if not calendar.is_session(day):
        day = calendar.next_session(day)
    _, close = calendar.session_open_close(day)
    if close.to_pydatetime() < ts:
        _, close = calendar.session_open_close(calendar.next_session(day))
    return close.to_pydatetime().astimezone(dt.UTC)
