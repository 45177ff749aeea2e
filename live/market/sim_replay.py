"""The stream feed with no keys: the lake's minute bars replayed on the runner's clock.

:class:`SimReplayFeed` is a :class:`~live.market.feed.StreamFeed` whose bar source is the lake's
``stock_bars_1m`` partition of the clock's session. Each :meth:`~SimReplayFeed.pump` applies to
the book, and hands to :meth:`~live.market.feed.StreamFeed.on_bar`, every bar that has closed by
the clock's time (a bar starting at t is delivered at t + 1 min, never early), exactly as the
real stream's callbacks do, so the runner's intraday path is the one it runs on Alpaca. Its speed
is the clock's: a :class:`~live.clock.SimClock` at ``sim_speed`` (instant when None). Option marks
come from the daily chains repriced at the replayed spot (:mod:`live.market.marks`), and from the
stream's recorded ``option_quotes_1m`` (each minute's last NBBO, at the minute's end) when the
lake has them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from contracts import lake_store, paths
from contracts.calendar import is_session, new_york_date
from live.market.feed import StreamFeed
from live.market.snapshot import LakeDataError, SnapshotProvider
from live.market.stream.model import MinuteBar, OptionQuote
from strategies.models import MINUTE

log = logging.getLogger("live.market")
TABLE = "stock_bars_1m"
COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume", "vwap", "trade_count")
QUOTES = "option_quotes_1m"  # the stream's last NBBO per contract and minute, when recorded
QUOTE_COLUMNS = ("ts", "symbol", "quote_ts", "bid", "ask", "bid_size", "ask_size")


class SimReplayFeed(StreamFeed):
    """Replays ``<home>/lake/stock_bars_1m/session=<clock's session>/part.parquet``.

    Args:
        home: ``ALPACA_IMPROVED_HOME``.
        daily: The lake's daily snapshots.
        symbols: Replay only these (None: every symbol of the partition).
        grace_s: As :class:`StreamFeed`.
    """

    wakes = False  # driven by the clock: the runner sleeps on the clock, not on the feed

    def __init__(
        self, home: Path, daily: SnapshotProvider, symbols: Iterable[str] | None = None,
        grace_s: float = 2.0,
    ) -> None:  # fmt: skip
        super().__init__(daily, None, symbols, grace_s)
        self.lake = paths.lake_dir(Path(home))
        self.store = lake_store.from_env(self.lake)  # the bucket with ALPACA_IMPROVED_LAKE_URI
        self.only = frozenset(symbols) if symbols else None
        self.session: date | None = None
        self._queue: list[MinuteBar] = []
        self._next = 0
        self._replay_quotes: list[tuple[datetime, OptionQuote]] = []  # (minute, last NBBO)
        self._next_quote = 0

    def pump(self, now: datetime) -> int:
        """Deliver every bar of the clock's session that closed by ``now``, then count them.

        Raises:
            LakeDataError: The session's partition cannot be read (naming the file).
        """
        day = new_york_date(now)
        if day != self.session:
            self._load(day)
        quotes = self._replay_quotes
        while self._next_quote < len(quotes) and quotes[self._next_quote][0] + MINUTE <= now:
            self.on_quote(quotes[self._next_quote][1])  # a minute's last NBBO, at its end
            self._next_quote += 1
        queue = self._queue
        while self._next < len(queue) and queue[self._next].ts + MINUTE <= now:
            bar = queue[self._next]
            self._next += 1
            self.book.apply(bar)
            self.on_bar(bar)
        return super().pump(now)

    def _load(self, day: date) -> None:
        if self.session is not None:
            self.book.drop_session(self.session)  # memory stays flat over many sessions
        self.session, self._queue, self._next = day, [], 0
        self._replay_quotes, self._next_quote = [], 0
        quotes = self._read(QUOTES, day, QUOTE_COLUMNS)
        if quotes is not None:
            rows = quotes.sort("ts").iter_rows()
            self._replay_quotes = [(r[0], OptionQuote(r[1], *r[2:])) for r in rows]
        frame = self._read(TABLE, day, COLUMNS)
        if frame is None:
            if is_session(day):  # "1m" deployments still decide each minute, on no bars
                log.warning("sim replay: the lake has no %s partition for %s", TABLE, day)
            return
        if self.only is not None:
            frame = frame.filter(pl.col("symbol").is_in(sorted(self.only)))
        frame = frame.sort("ts", "symbol")
        if self.only is None:
            self.expected = frozenset(frame.get_column("symbol").unique().to_list())
        self._queue = [_bar(row) for row in frame.iter_rows(named=True)]

    def _read(self, table: str, day: date, columns: tuple[str, ...]) -> pl.DataFrame | None:
        path = self.lake / table / f"session={day.isoformat()}" / "part.parquet"
        source: Path | io.BytesIO = path
        if self.store.remote:  # one GET of the partition's one object
            path = self.store.partition(table, day)
            try:
                source = io.BytesIO(self.store.read(path))
            except FileNotFoundError:
                return None
        elif not path.is_file():
            return None
        try:
            return pl.read_parquet(source, columns=list(columns))
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
            raise LakeDataError(
                path,
                f"lake partition {path} cannot be replayed ({type(exc).__name__}); "
                f"re-materialize {table} for {day.isoformat()}",
            ) from None

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update(
            source=f"sim replay of {TABLE} {self.session}",
            replayed=self._next,
            queued=len(self._queue) - self._next,
        )
        return out


def _bar(row: dict[str, Any]) -> MinuteBar:
    return MinuteBar(
        row["symbol"], row["ts"], float(row["open"]), float(row["high"]), float(row["low"]),
        float(row["close"]), float(row["volume"] or 0.0), float(row["vwap"] or row["close"]),
        int(row["trade_count"] or 0),
    )  # fmt: skip
