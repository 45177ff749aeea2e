"""The stream in the lake: minute bars and option quotes written intraday in atomic micro-batches.

``StreamLakeWriter`` takes the stream layer's callbacks (``on_bar``, ``on_quote``: they only put
the item on a queue, so the stream thread never waits on a disk) and a writer thread flushes
every ``flush_seconds``. A flush rewrites each touched session partition whole, with everything
closed so far, through the one atomic writer (``contracts.parquet_io``: temp file, fsync,
rename), so:

- a crash loses at most what arrived since the last flush (at most the open minute with the
  default 1 s flush) and never leaves a half-written ``part.parquet``;
- a restart reads back what the partition holds and continues it (nothing is lost or doubled).

Tables (registered in ``contracts.lake``; this module is their writer):

- ``stream_bars_1m``: the ``stock_bars_1m`` columns, ``source`` = ``stream`` | ``revision`` |
  ``backfill``. One row per (symbol, minute), decided by :class:`MinuteBook`: a revision
  replaces its row, a backfill bar never overwrites a stream one, duplicates change nothing.
- ``option_quotes_1m``: the last NBBO per contract and minute (``ts`` = the minute's start,
  ``quote_ts`` = the exchange time of that last quote). A minute is written once it is closed
  (a later quote or bar, or the clock, has passed its end), so every row is that minute's final
  quote; a quote that arrives late for a written minute replaces it only if it is newer.

The nightly REST ``stock_bars_1m`` stays the truth; ``stream_reconciliation`` compares the two.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Any

import polars as pl

from contracts import lake as layout
from contracts import lake_store, paths
from contracts.calendar import new_york_date
from contracts.errors import ContractError
from contracts.lake_columns import BAR_SCHEMA, OPTION_QUOTE_SCHEMA
from contracts.parquet_io import write_table_atomic
from live.market.stream.minutes import MinuteBook
from live.market.stream.model import MinuteBar, OptionQuote

log = logging.getLogger(__name__)

STREAM_BARS = "stream_bars_1m"
OPTION_QUOTES = "option_quotes_1m"
# Test hook: seconds to sleep between writing the temporary file and renaming it into place.
FLUSH_PAUSE_ENV = "ALPACA_IMPROVED_TEST_FLUSH_PAUSE"

STREAM_BAR_SCHEMA = BAR_SCHEMA  # the stock_bars_1m columns
_OCC = re.compile(r"^([A-Z][A-Z0-9.]{0,5}?)(\d{6})([CP])(\d{8})$")
_MINUTE = timedelta(minutes=1)


class StreamLakeError(ContractError):
    """The stream cannot write a partition (the message names the file and the fix)."""


def occ_underlying(symbol: str) -> str:
    """The root of an OCC option symbol (``SPY240426C00555000`` -> ``SPY``)."""
    match = _OCC.match(symbol)
    if match is None:
        raise ValueError(
            f"option symbol {symbol!r} is not an OCC symbol (ROOT + YYMMDD + C/P + 8-digit "
            "strike, e.g. SPY240426C00555000)"
        )
    return match.group(1)


def _minute(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(second=0, microsecond=0)


def _pause_hook() -> Callable[[Path], None] | None:
    pause = os.environ.get(FLUSH_PAUSE_ENV)
    if not pause:
        return None

    def hook(tmp: Path) -> None:
        print(f"flush-pause {tmp}", file=sys.stderr, flush=True)
        time.sleep(float(pause))

    return hook


@dataclass
class _Session:
    """One session's rows: what the partition holds (``base``) and what joins it next flush."""

    base: pl.DataFrame
    pending: list[Any] = field(default_factory=list)


_BAR_FIELDS = ("symbol", "ts", "open", "high", "low", "close", "volume", "vwap", "trade_count")
_QUOTE_FIELDS = ("symbol", "ts", "bid", "ask", "bid_size", "ask_size")


def _rows(
    items: list[Any], fields: tuple[str, ...], schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """A frame of the dataclasses' ``fields`` (typed by ``schema``), built column-wise."""
    return pl.DataFrame(
        {f: list(map(attrgetter(f), items)) for f in fields},
        schema={f: schema[f] for f in fields},
    )


def _new_york_session(ts: str) -> pl.Expr:
    return pl.col(ts).dt.convert_time_zone("America/New_York").dt.date().alias("session")


def _bars_frame(bars: list[MinuteBar]) -> pl.DataFrame:
    return (
        _rows(bars, _BAR_FIELDS, STREAM_BAR_SCHEMA)
        .with_columns(
            _new_york_session("ts"),
            pl.Series("source", [b.source for b in bars], pl.String()),
            pl.lit("raw").alias("adjustment"),
            pl.lit(False).alias("filled"),
        )
        .select(list(STREAM_BAR_SCHEMA))
    )


def _quotes_frame(quotes: list[OptionQuote]) -> pl.DataFrame:
    frame = _rows(quotes, _QUOTE_FIELDS, {**OPTION_QUOTE_SCHEMA, "ts": pl.Datetime("us", "UTC")})
    return frame.select(
        _new_york_session("ts"),
        pl.Series("underlying", [occ_underlying(q.symbol) for q in quotes], pl.String()),
        "symbol",
        pl.col("ts").dt.truncate("1m").cast(pl.Datetime("ns", "UTC")),
        "bid",
        "ask",
        "bid_size",
        "ask_size",
        ((pl.col("bid") + pl.col("ask")) / 2).alias("mid"),
        pl.col("ts").cast(pl.Datetime("ns", "UTC")).alias("quote_ts"),
    )


def _merge(base: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """``base`` with ``new``'s rows replacing those of the same (symbol, ts), sorted."""
    merged = pl.concat([base, new], how="vertical") if base.height else new
    return merged.unique(["symbol", "ts"], keep="last", maintain_order=True).sort(["symbol", "ts"])


class StreamLakeWriter:
    """Writes the stream's closed minutes into ``<home>/lake`` in atomic micro-batches.

    Args:
        home: the data root (``ALPACA_IMPROVED_HOME``).
        flush_seconds: how often the writer thread flushes (when something changed).
        fsync: fsync each file and its directory (keep on outside tests).
        quote_grace: a quote minute is also closed once the clock is this far past its end.
        clock: the receive clock (UTC), used only to close quiet quote minutes.
    """

    def __init__(
        self,
        home: Path,
        flush_seconds: float = 1.0,
        fsync: bool = True,
        quote_grace: timedelta = timedelta(seconds=2),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        for name in (STREAM_BARS, OPTION_QUOTES):
            layout.table(name, "session")  # registered, session-partitioned
        self.lake = paths.lake_dir(Path(home))
        # the lake's store: local files, or S3 with ALPACA_IMPROVED_LAKE_URI (checked here, at
        # start-up); on S3 each flush is one conditional PUT per partition (plus its table's
        # commit marker), so a second writer of the same partition fails with PartitionConflict
        # instead of interleaving
        self.store = lake_store.from_env(self.lake)
        self.flush_seconds = flush_seconds
        self.fsync = fsync
        self.quote_grace = quote_grace
        self.clock = clock
        self.book = MinuteBook()
        self._queue: queue.SimpleQueue[MinuteBar | OptionQuote] = queue.SimpleQueue()
        self._lock = threading.Lock()  # one flush at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bars: dict[date, _Session] = {}
        self._quotes: dict[date, _Session] = {}
        self._open_quotes: dict[tuple[str, datetime], OptionQuote] = {}
        self._quote_seen: dict[tuple[str, datetime], datetime] = {}  # written rows' quote_ts
        self._stored: dict[tuple[str, datetime], tuple[pl.DataFrame, int]] = {}  # read back
        self._watermark: datetime | None = None  # latest exchange time seen
        self._last_bar: dict[str, datetime] = {}
        self._pause = _pause_hook()
        self.counts: Counter[str] = Counter()
        self._heights: dict[tuple[str, date], int] = {}  # rows in each partition written
        self.flush_ms: list[float] = []
        self.last_flush_at: datetime | None = None
        self.error: str | None = None

    # --- the stream's callbacks: never block ---
    def on_bar(self, bar: MinuteBar) -> None:
        """Queue a minute bar (called on the stream's thread)."""
        self._queue.put(bar)

    def on_quote(self, quote: OptionQuote) -> None:
        """Queue an option quote (called on the stream's thread)."""
        self._queue.put(quote)

    # --- lifecycle ---
    def start(self) -> StreamLakeWriter:
        """Start the writer thread (flushes every ``flush_seconds``)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="stream-lake-writer", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and write everything, the open quote minutes included."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        self.flush(final=True)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception as exc:  # keep streaming; status shows it, the next flush retries
                self.error = f"{type(exc).__name__}: {exc}"
                log.error("stream lake flush failed: %s", self.error)

    def open_session(self, session: date) -> None:
        """Read back ``session``'s partitions now (a restart continues them).

        Raises:
            StreamLakeError: a partition is damaged or foreign (named; it is never overwritten).
        """
        with self._lock:
            self._session(STREAM_BARS, self._bars, session)
            self._session(OPTION_QUOTES, self._quotes, session)

    # --- applying what arrived ---
    def _session(self, table: str, store: dict[date, _Session], session: date) -> _Session:
        found = store.get(session)
        if found is not None:
            return found
        path = self.store.partition(table, session)
        schema = STREAM_BAR_SCHEMA if table == STREAM_BARS else OPTION_QUOTE_SCHEMA
        base = pl.DataFrame(schema=schema)
        if self.store.exists(path):
            problem = self.store.parquet_problem(path)
            try:
                if problem is None:
                    base = pl.read_parquet(io.BytesIO(self.store.read(path)))
            except Exception as exc:  # polars raises several types for damaged files
                problem = f"it cannot be read ({type(exc).__name__})"
            if problem is not None or list(base.schema.items()) != list(schema.items()):
                raise StreamLakeError(
                    f"lake file {self.store.url(path)} is not a {table} partition this writer "
                    f"can continue ({problem or 'other columns'}); move it out of the lake and "
                    "restart the stream (it is never overwritten)"
                )
            self._seed(table, base)
        store[session] = _Session(base)
        return store[session]

    def _seed(self, table: str, base: pl.DataFrame) -> None:
        """Restart: what the partition holds decides later arrivals as if just received.

        Bars are indexed, not rebuilt: a stored row enters the book only when a bar for its
        minute arrives again (a full session of 500 symbols reads back in a fraction of a second).
        """
        if table == STREAM_BARS:
            keys = base.select("symbol", "ts").rows()
            self._stored.update((key, (base, i)) for i, key in enumerate(keys))
            for symbol, last in base.group_by("symbol").agg(pl.col("ts").max()).rows():
                self._note_bar(symbol, last)
            return
        for symbol, ts, quote_ts in base.select("symbol", "ts", "quote_ts").iter_rows():
            self._quote_seen[(symbol, ts)] = quote_ts

    def _note_bar(self, symbol: str, ts: datetime) -> None:
        if symbol not in self._last_bar or ts > self._last_bar[symbol]:
            self._last_bar[symbol] = ts
        self._advance(ts + _MINUTE)

    def _advance(self, ts: datetime) -> None:
        if self._watermark is None or ts > self._watermark:
            self._watermark = ts

    def _apply_bar(self, bar: MinuteBar) -> None:
        session = self._session(STREAM_BARS, self._bars, new_york_date(bar.ts))
        stored = self._stored.pop((bar.symbol, bar.ts), None)
        if stored is not None:  # written before a restart: the book learns it first
            frame, i = stored
            self.book.apply(MinuteBar(*frame.select(_BAR_FIELDS + ("source",)).row(i)))
        outcome = self.book.apply(bar)
        self.counts[f"bars_{outcome}"] += 1
        self.counts[f"bars_from_{bar.source}"] += 1
        self._note_bar(bar.symbol, bar.ts)
        if outcome != "duplicate":
            session.pending.append(bar)

    def _apply_quote(self, quote: OptionQuote) -> None:
        occ_underlying(quote.symbol)  # a foreign symbol fails here, not in the flush
        self.counts["quotes"] += 1
        self._advance(quote.ts)
        key = (quote.symbol, _minute(quote.ts))
        held = self._open_quotes.get(key)
        if held is None or quote.ts >= held.ts:
            self._open_quotes[key] = quote

    def _close_quotes(self, final: bool) -> None:
        """Move the quotes of closed minutes into their sessions' pending rows."""
        now = self.clock() - self.quote_grace
        edge = max(now, self._watermark) if self._watermark is not None else now
        for key in [k for k in self._open_quotes if final or k[1] + _MINUTE <= edge]:
            quote = self._open_quotes.pop(key)
            # load the partition first: a restart knows the quote_ts of every written minute
            part = self._session(OPTION_QUOTES, self._quotes, new_york_date(key[1]))
            seen = self._quote_seen.get(key)
            if seen is not None and quote.ts <= seen:
                self.counts["quotes_stale"] += 1
                continue
            self._quote_seen[key] = quote.ts
            part.pending.append(quote)

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, MinuteBar):
                self._apply_bar(item)
            else:
                self._apply_quote(item)

    # --- writing ---
    def _write_changed(
        self,
        table: str,
        store: dict[date, _Session],
        frame_of: Callable[[list[Any]], pl.DataFrame],
    ) -> int:
        """Rewrite each session partition of ``table`` that has pending rows; how many."""
        written = 0
        for session, part in sorted(store.items()):
            if not part.pending:
                continue
            merged = _merge(part.base, frame_of(part.pending))
            path = self.store.partition(table, session)
            if self.store.remote:  # one atomic conditional PUT
                self.store.write(merged.to_arrow(), path, fsync=self.fsync, hold=True)
            else:
                write_table_atomic(
                    merged.to_arrow(), path, fsync=self.fsync, before_rename=self._pause
                )
            self._heights[(table, session)] = merged.height
            part.base, part.pending = merged, []
            written += 1
        return written

    def flush(self, final: bool = False) -> int:
        """Apply what is queued and rewrite every changed session partition; partitions written.

        ``final``: also write the quote minutes still open (on a clean shutdown).
        """
        with self._lock:
            started = time.perf_counter()
            self._drain()
            self._close_quotes(final)
            written = self._write_changed(STREAM_BARS, self._bars, _bars_frame)
            written += self._write_changed(OPTION_QUOTES, self._quotes, _quotes_frame)
            if written:
                self.flush_ms.append((time.perf_counter() - started) * 1000)
                self.flush_ms = self.flush_ms[-100:]
                self.last_flush_at = self.clock()
                self.counts["flushes"] += 1
                self.error = None
            self._forget_old_sessions()
            return written

    def _forget_old_sessions(self) -> None:
        """Written sessions before the newest one leave memory (a late arrival reloads them)."""
        for store in (self._bars, self._quotes):
            if len(store) < 2:
                continue
            newest = max(store)
            for session in [s for s, p in store.items() if s < newest and not p.pending]:
                del store[session]
                if store is self._bars:
                    self.book.drop_session(session)
                    self._stored = {
                        k: v for k, v in self._stored.items() if new_york_date(k[1]) != session
                    }
                else:
                    self._quote_seen = {
                        k: v for k, v in self._quote_seen.items() if new_york_date(k[1]) != session
                    }

    # --- health ---
    def stats(self) -> dict[str, Any]:
        """Counts, rows written, flush times and each symbol's latest bar (for the status file)."""
        with self._lock:
            last = dict(self._last_bar)
            return {
                "counts": dict(self.counts),
                "rows": {
                    t: sum(n for (name, _), n in self._heights.items() if name == t)
                    for t in (STREAM_BARS, OPTION_QUOTES)
                },
                "sessions": sorted({s.isoformat() for _, s in self._heights}),
                "queued": self._queue.qsize(),
                "open_quote_minutes": len(self._open_quotes),
                "flush_ms_last": round(self.flush_ms[-1], 1) if self.flush_ms else None,
                "flush_ms_max": round(max(self.flush_ms), 1) if self.flush_ms else None,
                "last_flush_at": self.last_flush_at.isoformat() if self.last_flush_at else None,
                "last_bar": {s: t.isoformat() for s, t in sorted(last.items())},
                "error": self.error,
            }
