"""The one in-memory store of a session's minute bars, whatever feed or REST call they came from.

Every bar is keyed by ``(symbol, ts)`` with ``ts`` the exchange's bar start (never the receive
clock), so duplicated, late and out-of-order frames land on the same key and are harmless:

- an unseen minute is ``"new"``, whenever it arrives (a late bar for a past minute included);
- an identical frame for a seen minute is a ``"duplicate"`` and changes nothing;
- an ``updatedBars`` revision (``source="revision"``) replaces its minute and is counted once; a
  repeat of the same revision is a duplicate, a later revision with other values replaces again
  (Polygon re-broadcasts a minute whenever a late trade changes it);
- a stream bar that arrives after a revision of its minute is older news and is ignored; a stream
  bar with other values than the stored stream bar is treated as a revision (Polygon's advice:
  "treat a bar with a timestamp it has already seen as a replacement");
- a REST backfill bar (``source="backfill"``) only fills a minute nothing else has filled: it
  never overwrites a stream or revision bar, and a stream bar never overwrites it (REST answered
  for a closed minute, and the nightly REST partition is the truth anyway).

The book is thread-safe: the stream threads write, the runner and the lake writer read.

Storage is by session, then minute, then symbol, and each bar is held as a plain tuple of its
fields (a row), so a websocket frame (one minute's bars of many symbols) is booked in a few
C-level passes (:meth:`MinuteBook.apply_many`'s fast path: one minute, every symbol unseen in
it) instead of a Python loop per bar; any other batch takes the per-bar rules above, with the
same outcomes and counts. Rows, not the bars: CPython's collector stops tracking a plain tuple
of strings, numbers and datetimes after one pass, but tracks a tuple subclass such as
:class:`MinuteBar` for good, so a session of held bars made each collection walk them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from operator import itemgetter
from typing import Any, Literal

import polars as pl

from contracts.calendar import new_york_date
from live.market.stream.model import MinuteBar
from strategies.models import INTRADAY_COLUMNS, MINUTE

Outcome = Literal["new", "revision", "duplicate"]
OUTCOMES: tuple[Outcome, ...] = ("new", "revision", "duplicate")

BOOK_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("ns", "UTC"),  # as the lake's stock_bars_1m
    "symbol": pl.String(),
    **{c: pl.Float64() for c in ("open", "high", "low", "close", "volume", "vwap")},
    "trade_count": pl.Int64(),
    "source": pl.String(),
}
assert tuple(BOOK_SCHEMA)[:-1] == INTRADAY_COLUMNS  # the strategies' intraday contract + source


Row = tuple[Any, ...]  # MinuteBar's fields in its order, as a plain tuple
_SYMBOL, _TS, _SYMBOL_TS = itemgetter(0), itemgetter(1), itemgetter(0, 1)


def _decide(old: Row | None, new: MinuteBar) -> Outcome:
    """What ``new`` does to the minute holding ``old`` (see the module docstring)."""
    if old is None:
        return "new"
    same = old[2:9] == new[2:9]  # open .. trade_count
    old_source, new_source = old[9], new.source
    if new_source == "backfill" or old_source == "backfill":
        # REST fills holes only; a second REST answer with other values is a late-trade revision.
        if new_source == "backfill" and old_source == "backfill" and not same:
            return "revision"
        return "duplicate"
    if new_source == "revision":
        return "revision" if (old_source != "revision" or not same) else "duplicate"
    # a stream bar over a stream bar (a repeated or re-broadcast frame) or over a revision
    if old_source == "revision" or same:
        return "duplicate"
    return "revision"


class MinuteBook:
    """Minute bars by session, symbol and exchange minute; thread-safe.

    ``stats`` holds the counts of new / revision / duplicate per symbol (``stats[symbol]``) and in
    total (``stats["*"]``); read it through :meth:`counts`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bars: dict[date, dict[datetime, dict[str, Row]]] = {}  # session, minute, symbol
        self._last: dict[str, datetime] = {}
        self._latest: datetime | None = None  # max of _last's values
        self._sessions: dict[datetime, date] = {}  # minute -> New York session (a cache)
        self._by_symbol: dict[Outcome, Counter[str]] = {o: Counter() for o in OUTCOMES}
        self._totals: dict[Outcome, int] = dict.fromkeys(OUTCOMES, 0)

    def apply(self, bar: MinuteBar) -> Outcome:
        """Store ``bar`` under its (symbol, exchange minute); returns what it did."""
        with self._lock:
            return self._apply_one(bar)

    def apply_many(self, bars: Iterable[MinuteBar]) -> list[MinuteBar]:
        """:meth:`apply` each of ``bars`` in order under one lock (a websocket frame's bars).

        Returns the bars that changed the book (new or revision), in order; each bar's outcome
        and the counts are exactly those of applying the bars one by one.
        """
        bars = bars if isinstance(bars, list) else list(bars)
        if not bars:
            return []
        with self._lock:
            if self._apply_new_minute(bars):
                return bars
            apply = self._apply_one
            return [bar for bar in bars if apply(bar) != "duplicate"]

    def _apply_new_minute(self, bars: list[MinuteBar]) -> bool:
        """The fast path (lock held): all ``bars`` of one minute, of symbols it does not hold
        yet, each once. Books them in C-level passes and returns True; else changes nothing."""
        starts = set(map(_TS, bars))
        if len(starts) != 1:
            return False
        ts = starts.pop()
        symbols = list(map(_SYMBOL, bars))
        session = self._sessions.get(ts) or self._session_of(bars[0])
        minute = self._bars.get(session, {}).get(ts)
        if len(set(symbols)) != len(symbols) or (minute and not minute.keys().isdisjoint(symbols)):
            return False
        if minute is None:
            minute = self._bars.setdefault(session, {}).setdefault(ts, {})
        minute.update(zip(symbols, map(tuple, bars), strict=True))
        self._by_symbol["new"].update(symbols)
        self._totals["new"] += len(bars)
        if self._latest is None or ts >= self._latest:  # the newest minute for every symbol
            self._last.update(dict.fromkeys(symbols, ts))
            self._latest = ts
        else:
            for symbol in symbols:
                self._note_last(symbol, ts)
        return True

    def _apply_one(self, bar: MinuteBar) -> Outcome:
        """One bar by the rules of the module docstring (lock held)."""
        symbol, ts = bar[0], bar[1]
        session = self._sessions.get(ts) or self._session_of(bar)
        minute = self._bars.setdefault(session, {}).setdefault(ts, {})
        outcome = _decide(minute.get(symbol), bar)
        if outcome != "duplicate":
            minute[symbol] = tuple(bar)
            self._note_last(symbol, ts)
        self._by_symbol[outcome][symbol] += 1
        self._totals[outcome] += 1
        return outcome

    def _note_last(self, symbol: str, ts: datetime) -> None:
        held = self._last.get(symbol)
        if held is None or ts > held:
            self._last[symbol] = ts
            if self._latest is None or ts > self._latest:
                self._latest = ts

    def _session_of(self, bar: MinuteBar) -> date:
        """The New York session of ``bar.ts``, cached per minute (call with the lock held)."""
        ts = bar.ts
        if ts.tzinfo is None:
            raise ValueError(f"minute bar {bar.symbol} {ts!r} has no timezone (UTC)")
        if len(self._sessions) > 4096:
            self._sessions.clear()
        session = self._sessions[ts] = new_york_date(ts)
        return session

    def counts(self, symbol: str = "*") -> dict[str, int]:
        """New / revision / duplicate counts for ``symbol`` (``"*"``: all symbols)."""
        with self._lock:
            if symbol == "*":
                return {o: self._totals[o] for o in OUTCOMES}
            return {o: self._by_symbol[o][symbol] for o in OUTCOMES}

    def bar(self, symbol: str, ts: datetime) -> MinuteBar | None:
        """The stored bar of ``symbol`` starting at ``ts`` (None when there is none)."""
        with self._lock:
            row = self._bars.get(new_york_date(ts), {}).get(ts, {}).get(symbol)
        return None if row is None else MinuteBar._make(row)

    def bars(
        self,
        session: date,
        symbols: Iterable[str] | None = None,
        closed_by: datetime | None = None,
    ) -> pl.DataFrame:
        """The session's bars (``INTRADAY_COLUMNS`` + ``source``), sorted by (symbol, ts).

        ``closed_by``: only bars that closed by then (``ts + 1 min <= closed_by``).
        """
        wanted = None if symbols is None else set(symbols)
        with self._lock:
            rows = [
                row
                for ts, minute in self._bars.get(session, {}).items()
                if closed_by is None or ts + MINUTE <= closed_by
                for symbol, row in minute.items()
                if wanted is None or symbol in wanted
            ]
        rows.sort(key=_SYMBOL_TS)
        columns = dict(zip(MinuteBar._fields, zip(*rows, strict=True), strict=True)) if rows else {}
        return pl.DataFrame(
            {name: list(columns.get(name, ())) for name in BOOK_SCHEMA}, schema=BOOK_SCHEMA
        )

    def last_ts(self, symbol: str) -> datetime | None:
        """The latest exchange minute held for ``symbol`` (any session), or None."""
        with self._lock:
            return self._last.get(symbol)

    def minutes(self, symbol: str, session: date) -> set[datetime]:
        """The exchange minutes held for ``symbol`` in ``session``."""
        with self._lock:
            return {ts for ts, minute in self._bars.get(session, {}).items() if symbol in minute}

    def sessions(self) -> list[date]:
        """Sessions with at least one bar, oldest first."""
        with self._lock:
            return sorted(self._bars)

    def drop_session(self, session: date) -> None:
        """Forget every bar of ``session`` (the lake holds it once written)."""
        with self._lock:
            dropped = self._bars.pop(session, {})
            symbols = {s for minute in dropped.values() for s in minute}
            for symbol in symbols:
                last = self._last.get(symbol)
                if last is not None and new_york_date(last) == session:
                    rest = [
                        ts
                        for d in self._bars.values()
                        for ts, minute in d.items()
                        if symbol in minute
                    ]
                    if rest:
                        self._last[symbol] = max(rest)
                    else:
                        del self._last[symbol]
            self._latest = max(self._last.values(), default=None)
