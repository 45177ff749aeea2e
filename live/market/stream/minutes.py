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
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from typing import Literal

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


def _values(bar: MinuteBar) -> tuple[float, float, float, float, float, float, int]:
    return (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.vwap, bar.trade_count)


def _decide(old: MinuteBar | None, new: MinuteBar) -> Outcome:
    """What ``new`` does to the minute holding ``old`` (see the module docstring)."""
    if old is None:
        return "new"
    same = _values(old) == _values(new)
    if new.source == "backfill" or old.source == "backfill":
        # REST fills holes only; a second REST answer with other values is a late-trade revision.
        if new.source == "backfill" and old.source == "backfill" and not same:
            return "revision"
        return "duplicate"
    if new.source == "revision":
        return "revision" if (old.source != "revision" or not same) else "duplicate"
    # a stream bar over a stream bar (a repeated or re-broadcast frame) or over a revision
    if old.source == "revision" or same:
        return "duplicate"
    return "revision"


class MinuteBook:
    """Minute bars by session, symbol and exchange minute; thread-safe.

    ``stats`` holds the counts of new / revision / duplicate per symbol (``stats[symbol]``) and in
    total (``stats["*"]``); read it through :meth:`counts`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bars: dict[date, dict[str, dict[datetime, MinuteBar]]] = {}
        self._last: dict[str, datetime] = {}
        self._sessions: dict[datetime, date] = {}  # minute -> New York session (a cache)
        self.stats: dict[str, Counter[str]] = {"*": Counter()}

    def apply(self, bar: MinuteBar) -> Outcome:
        """Store ``bar`` under its (symbol, exchange minute); returns what it did."""
        ts = bar.ts
        with self._lock:
            session = self._sessions.get(ts)
            if session is None:  # one time-zone conversion per minute, not per bar
                if ts.tzinfo is None:
                    raise ValueError(f"minute bar {bar.symbol} {ts!r} has no timezone (UTC)")
                if len(self._sessions) > 4096:
                    self._sessions.clear()
                session = self._sessions[ts] = new_york_date(ts)
            by_symbol = self._bars.get(session)
            if by_symbol is None:
                by_symbol = self._bars[session] = {}
            minutes = by_symbol.get(bar.symbol)
            if minutes is None:
                minutes = by_symbol[bar.symbol] = {}
            outcome = _decide(minutes.get(ts), bar)
            if outcome != "duplicate":
                minutes[ts] = bar
                last = self._last.get(bar.symbol)
                if last is None or ts > last:
                    self._last[bar.symbol] = ts
            counter = self.stats.get(bar.symbol)
            if counter is None:
                counter = self.stats[bar.symbol] = Counter()
            counter[outcome] += 1
            self.stats["*"][outcome] += 1
        return outcome

    def counts(self, symbol: str = "*") -> dict[str, int]:
        """New / revision / duplicate counts for ``symbol`` (``"*"``: all symbols)."""
        with self._lock:
            c = self.stats.get(symbol, Counter())
            return {k: c[k] for k in OUTCOMES}

    def bar(self, symbol: str, ts: datetime) -> MinuteBar | None:
        """The stored bar of ``symbol`` starting at ``ts`` (None when there is none)."""
        with self._lock:
            return self._bars.get(new_york_date(ts), {}).get(symbol, {}).get(ts)

    def bars(
        self,
        session: date,
        symbols: Iterable[str] | None = None,
        closed_by: datetime | None = None,
    ) -> pl.DataFrame:
        """The session's bars (``INTRADAY_COLUMNS`` + ``source``), sorted by (symbol, ts).

        ``closed_by``: only bars that closed by then (``ts + 1 min <= closed_by``).
        """
        with self._lock:
            by_symbol = self._bars.get(session, {})
            wanted = sorted(by_symbol) if symbols is None else sorted(set(symbols))
            rows = [
                b
                for s in wanted
                for b in sorted(by_symbol.get(s, {}).values(), key=lambda b: b.ts)
                if closed_by is None or b.ts + MINUTE <= closed_by
            ]
        return pl.DataFrame(
            {
                "ts": [b.ts for b in rows],
                "symbol": [b.symbol for b in rows],
                "open": [b.open for b in rows],
                "high": [b.high for b in rows],
                "low": [b.low for b in rows],
                "close": [b.close for b in rows],
                "volume": [b.volume for b in rows],
                "vwap": [b.vwap for b in rows],
                "trade_count": [b.trade_count for b in rows],
                "source": [b.source for b in rows],
            },
            schema=BOOK_SCHEMA,
        )

    def last_ts(self, symbol: str) -> datetime | None:
        """The latest exchange minute held for ``symbol`` (any session), or None."""
        with self._lock:
            return self._last.get(symbol)

    def minutes(self, symbol: str, session: date) -> set[datetime]:
        """The exchange minutes held for ``symbol`` in ``session``."""
        with self._lock:
            return set(self._bars.get(session, {}).get(symbol, {}))

    def sessions(self) -> list[date]:
        """Sessions with at least one bar, oldest first."""
        with self._lock:
            return sorted(self._bars)

    def drop_session(self, session: date) -> None:
        """Forget every bar of ``session`` (the lake holds it once written)."""
        with self._lock:
            dropped = self._bars.pop(session, {})
            for symbol in dropped:
                last = self._last.get(symbol)
                if last is not None and new_york_date(last) == session:
                    rest = [max(m) for s, d in self._bars.items() if (m := d.get(symbol))]
                    if rest:
                        self._last[symbol] = max(rest)
                    else:
                        del self._last[symbol]
