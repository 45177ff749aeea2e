"""Which minutes a stream missed, from the exchange calendar, and which REST windows fill them.

alpaca-py reconnects but never backfills, and a minute bar exists only for a minute with valid
trades. So a hole in the received minutes is not by itself a gap: it is a *question* for REST.
After every (re)connect and on a timer the service asks :class:`GapTracker` which of the
session's minutes (from the NYSE calendar, half days closing at 13:00 included) that should have
closed by ``now - settle`` are unaccounted for, per symbol, and gets REST windows back: each one
runs from the last bar received before a hole up to the first bar after it (adjacent holes of
several symbols share a window, so one REST call serves them all). Once REST answered for a
window, every asked minute it returned no bar for is recorded as verified-empty and never asked
again; a minute answered from a provisional source (IEX standing in for the last 15 minutes of
SIP on the basic plan) is asked again once that window has passed.

Pure functions plus one small stateful class; no I/O, no clock reads (``now`` is passed in).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

from contracts.calendar import is_session, session_open_close
from strategies.models import MINUTE

DEFAULT_SETTLE = timedelta(
    seconds=15
)  # bars land ~1 s after the minute; trades may report 10 s late
DEFAULT_JOIN = timedelta(minutes=5)  # holes this close share one REST window


@dataclass(frozen=True, slots=True)
class Window:
    """A REST request for the minute bars of ``symbols`` starting in ``[start, end)``."""

    start: datetime
    end: datetime
    symbols: tuple[str, ...]

    def minutes(self) -> list[datetime]:
        """Every minute start in the window."""
        n = int((self.end - self.start) / MINUTE)
        return [self.start + i * MINUTE for i in range(n)]


def session_minutes(session: date) -> list[datetime]:
    """Every minute start of ``session``'s regular hours in UTC (390, or 210 on a half day)."""
    if not is_session(session):
        return []
    opn, cls = session_open_close(session)
    start = _utc(opn)
    n = int((_utc(cls) - start) / MINUTE)
    return [start + i * MINUTE for i in range(n)]


def due_minutes(session: date, now: datetime, settle: timedelta = DEFAULT_SETTLE) -> list[datetime]:
    """The session's minutes whose bar should have arrived by ``now`` (closed ``settle`` ago)."""
    return [m for m in session_minutes(session) if m + MINUTE + settle <= now]


def unaccounted(
    expected: Iterable[datetime], received: set[datetime], empty: set[datetime]
) -> list[datetime]:
    """Expected minutes neither received nor verified empty, sorted."""
    return sorted(m for m in expected if m not in received and m not in empty)


def runs(minutes: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Contiguous runs of minute starts as ``[start, end)`` intervals, in order."""
    out: list[tuple[datetime, datetime]] = []
    for m in sorted(set(minutes)):
        if out and out[-1][1] == m:
            out[-1] = (out[-1][0], m + MINUTE)
        else:
            out.append((m, m + MINUTE))
    return out


def windows(
    missing: Mapping[str, Iterable[datetime]], join: timedelta = DEFAULT_JOIN
) -> list[Window]:
    """REST windows covering every missing minute; holes within ``join`` of each other merge.

    Each window asks only for the symbols that miss a minute inside it (asking a received minute
    again is harmless: the book keeps the stream's bar).
    """
    spans = sorted((s, e, sym) for sym, ms in missing.items() for s, e in runs(ms))
    out: list[tuple[datetime, datetime, set[str]]] = []
    for s, e, sym in spans:
        if out and s <= out[-1][1] + join:
            start, end, syms = out[-1]
            out[-1] = (start, max(end, e), syms | {sym})
        else:
            out.append((s, e, {sym}))
    return [Window(s, e, tuple(sorted(syms))) for s, e, syms in out]


@dataclass
class GapStats:
    """Minutes found unaccounted, filled by REST, verified empty; windows asked."""

    found: int = 0
    filled: int = 0
    empty: int = 0
    windows: int = 0


class GapTracker:
    """Remembers verified-empty minutes and what was found and filled; thread-safe.

    Args:
        settle: How long after a minute closes its bar counts as missing.
        join: Holes this close share one REST window.
    """

    def __init__(self, settle: timedelta = DEFAULT_SETTLE, join: timedelta = DEFAULT_JOIN) -> None:
        self.settle = settle
        self.join = join
        self.stats = GapStats()
        self._lock = threading.Lock()
        # symbol -> minute -> None when final, else when a provisional "empty" is asked again
        self._empty: dict[str, dict[datetime, datetime | None]] = {}
        self._found: set[tuple[str, datetime]] = set()

    def empty_minutes(self, symbol: str, now: datetime) -> set[datetime]:
        """Minutes of ``symbol`` verified empty (provisional ones until they expire)."""
        with self._lock:
            return {
                m
                for m, until in self._empty.get(symbol, {}).items()
                if until is None or now < until
            }

    def missing(
        self, session: date, received: Mapping[str, set[datetime]], now: datetime
    ) -> dict[str, list[datetime]]:
        """Per symbol, the session's due minutes neither received nor verified empty."""
        due = due_minutes(session, now, self.settle)
        out: dict[str, list[datetime]] = {}
        for symbol, got in received.items():
            holes = unaccounted(due, got, self.empty_minutes(symbol, now))
            if holes:
                out[symbol] = holes
        with self._lock:
            before = len(self._found)
            self._found.update((s, m) for s, ms in out.items() for m in ms)
            self.stats.found += len(self._found) - before
        return out

    def find(
        self, session: date, received: Mapping[str, set[datetime]], now: datetime
    ) -> list[Window]:
        """The REST windows to ask now (empty when nothing is unaccounted for)."""
        return windows(self.missing(session, received, now), self.join)

    def record(
        self,
        window: Window,
        returned: Mapping[str, Iterable[datetime]],
        provisional_until: datetime | None = None,
    ) -> None:
        """REST answered ``window``: every asked minute without a bar becomes verified-empty.

        ``provisional_until``: the answer came from a stand-in feed; its empty minutes are asked
        again from then on (a bar it did return fills the minute for good).
        """
        with self._lock:
            self.stats.windows += 1
            for symbol in window.symbols:
                got = set(returned.get(symbol, ()))
                empty = self._empty.setdefault(symbol, {})
                for m in window.minutes():
                    key = (symbol, m)
                    if m in got:
                        if key in self._found:
                            self.stats.filled += 1
                            self._found.discard(key)
                        empty.pop(m, None)
                    elif m not in empty or empty[m] is not None:
                        was_found = key in self._found
                        empty[m] = provisional_until
                        if was_found and provisional_until is None:
                            self.stats.empty += 1
                            self._found.discard(key)

    def forget_session(self, session: date) -> None:
        """Drop what is remembered about ``session``'s minutes."""
        mins = set(session_minutes(session))
        with self._lock:
            for empty in self._empty.values():
                for m in mins & empty.keys():
                    del empty[m]
            self._found = {k for k in self._found if k[1] not in mins}


def _utc(ts: pd.Timestamp) -> datetime:
    out: datetime = ts.tz_convert("UTC").to_pydatetime()
    return out
