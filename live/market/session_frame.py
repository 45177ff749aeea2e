"""The session's minute bars as one polars frame, grown by appends instead of rebuilt per minute.

:meth:`MinuteBook.bars <live.market.stream.minutes.MinuteBook.bars>` builds its frame from Python
objects on every call: over a session of many symbols that is tens of milliseconds, paid on
every bar close. :class:`SessionFrame` keeps the frame and appends only the bars that arrived
since the last read. The book stays the truth: whenever the appends might not tell its whole
story (a revision of a minute already in the frame, a new session, or a book that applied more
or fewer bars than were handed here) the frame is rebuilt from it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from contracts.calendar import new_york_date
from live.market.stream.minutes import BOOK_SCHEMA, MinuteBook
from live.market.stream.model import MinuteBar
from strategies.models import INTRADAY_COLUMNS, MINUTE

SCHEMA = {c: BOOK_SCHEMA[c] for c in INTRADAY_COLUMNS}
MAX_CHUNKS = 16


def _frame(bars: list[MinuteBar]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            (b.ts, b.symbol, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count)
            for b in bars
        ],
        schema=SCHEMA,
        orient="row",
    )


class SessionFrame:
    """One session's bars of ``book``; :meth:`add` every bar the book applied (new or revised).

    Alongside the frame it keeps numpy columns of each row's start (ns) and symbol code, so a
    read is one numpy mask and one polars gather (a polars filter and sort per read cost more
    than the whole decision on a busy machine).

    Args:
        book: The minute book (the truth this frame mirrors).
    """

    def __init__(self, book: MinuteBook) -> None:
        self.book = book
        self._lock = threading.Lock()
        self._pending: list[MinuteBar] = []
        self._session: date | None = None
        self._applied = -1  # the book's new + revision count the frame mirrors
        self.rebuilds = 0
        self._reset(pl.DataFrame(schema=SCHEMA), None)

    def _reset(self, frame: pl.DataFrame, session: date | None) -> None:
        self._session, self._frame = session, frame.rechunk()
        symbols = frame.get_column("symbol").to_list()
        self._codes: dict[str, int] = {}
        self._code = np.array([self._code_of(s) for s in symbols], dtype=np.int64)
        self._ts = frame.get_column("ts").dt.epoch("ns").to_numpy().astype(np.int64)
        self._close = frame.get_column("close").to_numpy().astype(np.float64)
        self._keys = set(zip(symbols, frame.get_column("ts").to_list(), strict=True))

    def _code_of(self, symbol: str) -> int:
        return self._codes.setdefault(symbol, len(self._codes))

    def add(self, bar: MinuteBar) -> None:
        """A bar the book applied (thread-safe; the stream's callback thread calls it)."""
        with self._lock:
            self._pending.append(bar)

    def bars(
        self, session: date, symbols: Iterable[str] | None, closed_by: datetime
    ) -> tuple[pl.DataFrame, dict[str, float]]:
        """As :meth:`MinuteBook.bars` (``INTRADAY_COLUMNS``, sorted by symbol and ts), and the
        last close of each symbol in it."""
        self._sync(session)
        wanted = sorted(set(symbols)) if symbols is not None else sorted(self._codes)
        rank = np.full(len(self._codes) + 1, -1, dtype=np.int64)
        for k, symbol in enumerate(wanted):
            if symbol in self._codes:
                rank[self._codes[symbol]] = k
        cutoff = _ns(closed_by - MINUTE)
        row_rank = rank[self._code] if self._code.size else self._code
        idx = np.flatnonzero((self._ts <= cutoff) & (row_rank >= 0))
        idx = idx[np.lexsort((self._ts[idx], row_rank[idx]))]
        last: dict[str, float] = {}
        if idx.size:
            ranks = row_rank[idx]
            ends = np.flatnonzero(np.append(ranks[1:] != ranks[:-1], True))
            last = {wanted[int(ranks[e])]: float(self._close[idx[e]]) for e in ends}
        return self._frame[idx], last

    def _sync(self, session: date) -> None:
        counts = self.book.counts()  # read before the pending bars: a race only forces a rebuild
        applied = counts["new"] + counts["revision"]
        with self._lock:
            pending, self._pending = self._pending, []
        today = [b for b in pending if new_york_date(b.ts) == session]
        if (
            session != self._session
            or applied != self._applied + len(pending)
            or any((b.symbol, b.ts) in self._keys for b in today)
        ):
            self.rebuilds += 1
            self._reset(self.book.bars(session).select(INTRADAY_COLUMNS), session)
        elif today:
            self._frame = pl.concat([self._frame, _frame(today)], rechunk=False)
            if self._frame.n_chunks() > MAX_CHUNKS:  # many small chunks slow every read
                self._frame = self._frame.rechunk()
            self._code = np.append(self._code, [self._code_of(b.symbol) for b in today])
            self._ts = np.append(self._ts, [_ns(b.ts) for b in today])
            self._close = np.append(self._close, [b.close for b in today])
            self._keys.update((b.symbol, b.ts) for b in today)
        self._applied = applied


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(ts: datetime) -> int:
    return (ts - _EPOCH) // timedelta(microseconds=1) * 1000
