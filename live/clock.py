"""The one place the live runner reads time: a :class:`Clock` object passed to everything.

``SystemClock`` reads the wall clock; ``SimClock`` is a simulated, accelerable clock whose
``sleep`` advances virtual time (``speed=None`` jumps instantly, ``speed=60`` runs a minute per
real second). Market hours come from :meth:`Clock.market`: the simulated clock uses the NYSE
calendar (holidays, early closes); the Alpaca runner asks the broker (``/v2/clock``) instead,
see :class:`BrokerClock`.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

import pandas as pd

from contracts.calendar import NEW_YORK, nyse

OPEN_NY, CLOSE_NY = dtime(9, 30), dtime(16, 0)


@dataclass(frozen=True, slots=True)
class MarketClock:
    """The market's clock as Alpaca's ``/v2/clock`` reports it (all tz-aware)."""

    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


def _at(day: date, hour: dtime) -> datetime:
    return datetime.combine(day, hour, NEW_YORK)


def _weekday_from(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def weekday_hours(ts: datetime) -> MarketClock:
    """Weekday 9:30-16:00 New York hours around ``ts`` (no holidays; outside the calendar)."""
    ny = ts.astimezone(NEW_YORK)
    day = ny.date()
    is_open = day.weekday() < 5 and _at(day, OPEN_NY) <= ny < _at(day, CLOSE_NY)
    open_day = _weekday_from(day if ny < _at(day, OPEN_NY) else day + timedelta(days=1))
    close_day = _weekday_from(day if ny < _at(day, CLOSE_NY) else day + timedelta(days=1))
    return MarketClock(ts, is_open, _at(open_day, OPEN_NY), _at(close_day, CLOSE_NY))


def regular_hours(ts: datetime) -> MarketClock:
    """NYSE hours around ``ts`` as Alpaca's ``/v2/clock`` reports them: holidays and early
    closes from the exchange calendar (:func:`contracts.calendar.nyse`, its one horizon; weekday
    hours outside it). ``next_open`` is strictly after ``ts``; ``next_close`` is today's close
    while the market is open."""
    cal = nyse()
    t = pd.Timestamp(ts).tz_convert("UTC")
    if not cal.first_minute <= t < cal.last_minute:
        return weekday_hours(ts)
    return MarketClock(
        ts,
        bool(cal.is_open_on_minute(t, ignore_breaks=True)),
        cal.next_open(t).to_pydatetime(),
        cal.next_close(t).to_pydatetime(),
    )


class Clock(ABC):
    """Time source: ``now`` (tz-aware UTC), ``monotonic`` seconds, ``sleep`` and market hours."""

    @abstractmethod
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""

    @abstractmethod
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going backwards (for durations)."""

    @abstractmethod
    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""

    def market(self) -> MarketClock:
        """Market hours at :meth:`now` (the NYSE calendar by default)."""
        return regular_hours(self.now())


class SystemClock(Clock):
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class SimClock(Clock):
    """A simulated clock starting at ``start``; ``speed`` = virtual seconds per real second.

    ``sleep`` always advances virtual time by exactly ``seconds`` and sleeps ``seconds / speed``
    of real time (nothing when ``speed`` is None), so runs are deterministic.
    """

    def __init__(self, start: datetime, speed: float | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("SimClock start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._origin = self._now
        self.speed = speed
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return (self.now() - self._origin).total_seconds()

    def advance(self, seconds: float) -> None:
        """Move virtual time forward without sleeping."""
        with self._lock:
            self._now += timedelta(seconds=max(seconds, 0.0))

    def set(self, ts: datetime) -> None:
        """Jump to ``ts`` (never backwards)."""
        with self._lock:
            self._now = max(self._now, ts.astimezone(UTC))

    def sleep(self, seconds: float) -> None:
        if self.speed:
            time.sleep(max(seconds, 0.0) / self.speed)
        self.advance(seconds)


class BrokerClock(Clock):
    """Local time for durations and sleeping; market hours and decision time from the broker.

    Args:
        base: The local clock.
        fetch: Returns the broker's :class:`MarketClock` (``/v2/clock``); the market decides
            whether it is open, never the local clock.
    """

    def __init__(self, base: Clock, fetch: Callable[[], MarketClock]) -> None:
        self.base = base
        self._fetch = fetch

    def now(self) -> datetime:
        return self.base.now()

    def monotonic(self) -> float:
        return self.base.monotonic()

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)

    def market(self) -> MarketClock:
        return self._fetch()
