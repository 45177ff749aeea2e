"""The runner's market data behind one interface (``live run --market-data lake|stream``).

``lake`` (:class:`MarketFeed`): the lake's daily snapshots, as the runner always read them;
nothing moves between daily closes. ``stream`` (:class:`StreamFeed`): the same daily history,
plus the session's minute bars in a :class:`~live.market.stream.minutes.MinuteBook` that a bar
source fills (the real ``MarketStream`` calls :meth:`StreamFeed.on_bar` / ``on_quote`` after
applying a frame to its book; :class:`~live.market.sim_replay.SimReplayFeed` replays the lake's
``stock_bars_1m`` through the same callbacks), and streamed option quotes. From them it builds
the minute snapshots "1m" strategies decide on (:meth:`StreamFeed.minute_snapshot`) and the
intraday marks the P&L checks read (:meth:`StreamFeed.marks`; option marks from streamed quotes,
else the chain repriced at the new spot by :func:`live.market.marks.reprice_chain`).

A minute is ready to decide on (:meth:`StreamFeed.closed_minute`) once every expected symbol's
bar for it arrived, or ``grace_s`` after its close (a minute without trades has no bar, so
waiting for it would wait forever); every clock minute is one, with or without bars.
Timestamps are the exchange's; readiness is judged on the runner's clock, so a replayed bar is
never seen before it closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import polars as pl

from contracts.calendar import new_york_date, session_open_close
from live.market.marks import NAN, reprice_chain
from live.market.session_frame import SessionFrame
from live.market.snapshot import SnapshotProvider
from live.market.stream.minutes import MinuteBook
from live.market.stream.model import FeedStatus, MinuteBar, OptionQuote
from live.orders.reports import Quote
from strategies.models import MINUTE, MarketSnapshot

KEEP_MINUTES = 16  # minutes whose arrival is remembered (readiness looks at the newest few)
EQUITY_GREEKS = (1.0, 0.0, 0.0, 0.0)


@lru_cache(maxsize=64)
def session_hours(session: date) -> tuple[datetime, datetime]:
    """Regular-hours open and close of ``session`` (UTC; early closes from the calendar)."""
    opens, closes = session_open_close(session)
    return opens.to_pydatetime(), closes.to_pydatetime()


class MarketFeed:
    """``lake`` mode: the daily snapshots of ``daily`` and nothing intraday.

    Subclasses (``stream``) add minute bars and marks; the runner calls every method below on
    any feed, so the daily path is the same in both modes.
    """

    mode = "lake"

    def __init__(self, daily: SnapshotProvider) -> None:
        self.daily = daily

    def latest(self, now: datetime) -> MarketSnapshot | None:
        """The daily snapshot a decision at ``now`` may see (:meth:`SnapshotProvider.latest`)."""
        return self.daily.latest(now)

    def pump(self, now: datetime) -> int:
        """Take what arrived (a replay delivers what closed by ``now``); new bars since the last
        call (0: nothing intraday)."""
        return 0

    def closed_minute(self, now: datetime) -> datetime | None:
        """Start of the newest minute ready to decide on at ``now`` (None: none)."""
        return None

    def arrival(self, minute: datetime) -> float | None:
        """``time.perf_counter()`` when ``minute``'s last bar arrived (None: unknown)."""
        return None

    def minute_snapshot(
        self, base: MarketSnapshot, minute: datetime, symbols: Iterable[str] | None = None
    ) -> MarketSnapshot:
        """What a "1m" strategy sees at the close of ``minute`` (a stream feed's)."""
        raise NotImplementedError(f"market data {self.mode!r} has no minute bars")

    def marks(
        self,
        base: Mapping[str, Quote],
        snapshot: MarketSnapshot | None,
        contracts: Collection[str] | None = None,
    ) -> dict[str, Quote]:
        """Marks now: ``base`` (the daily snapshot's quotes) with anything newer over it
        (``contracts``: the option contracts worth repricing; None: all)."""
        return dict(base)

    def wait(self, seconds: float) -> bool:
        """Block up to ``seconds`` of real time for a new bar (False: this feed never wakes)."""
        return False

    def stats(self) -> dict[str, Any]:
        """What ``/health`` shows about the feed."""
        return {"mode": self.mode}

    def close(self) -> None:
        """Stop the feed's source (the runner's ``close``)."""


class StreamFeed(MarketFeed):
    """``stream`` mode: daily history from ``daily`` plus the session's minutes from ``book``.

    Args:
        daily: The lake's daily snapshots (history, chains, yesterday's closes).
        book: The minute book the bar source applies bars to (the ``MarketStream``'s ``.book``);
            a new one when None.
        symbols: Symbols whose bars make a minute complete (None: wait ``grace_s`` each minute).
        grace_s: Seconds after a minute's close after which it is decided on whatever arrived.
        perf: Real-time counter for arrival times (decision latency).
    """

    mode = "stream"
    wakes = True  # a live source delivers on its own thread: the runner may wait for it

    def __init__(
        self, daily: SnapshotProvider, book: MinuteBook | None = None,
        symbols: Iterable[str] | None = None, grace_s: float = 2.0,
        perf: Callable[[], float] = time.perf_counter,
    ) -> None:  # fmt: skip
        super().__init__(daily)
        self.book = book if book is not None else MinuteBook()
        self.frame = SessionFrame(self.book)  # the session's bars as one frame, appended to
        self.expected: frozenset[str] | None = frozenset(symbols) if symbols else None
        self.grace_s, self.perf = grace_s, perf
        self._lock = threading.Lock()
        self._seen: dict[datetime, set[str]] = {}  # minute start -> symbols with a bar
        self._arrived: dict[datetime, float] = {}  # minute start -> perf() of its last bar
        self._new = 0
        self._bars = 0
        self._symbols: set[str] = set()
        self._quotes: dict[str, OptionQuote] = {}
        self._status: FeedStatus | None = None
        self._wake = threading.Event()
        self.source: Any = None  # the bar source to close with the feed (a MarketStream)

    def attach(self, source: Any) -> None:
        """Read ``source``'s book (a ``MarketStream`` whose callbacks are this feed's) and
        close it with the feed."""
        self.book, self.source = source.book, source
        self.frame = SessionFrame(self.book)

    # -- the bar source's callbacks (run on its thread; never block) --------------------------
    def on_bar(self, bar: MinuteBar) -> None:
        """A bar the source applied to :attr:`book`."""
        with self._lock:
            self._seen.setdefault(bar.ts, set()).add(bar.symbol)
            self.frame.add(bar)
            self._symbols.add(bar.symbol)
            self._arrived[bar.ts] = self.perf()
            self._new += 1
            self._bars += 1
            if len(self._seen) > 2 * KEEP_MINUTES:
                for old in sorted(self._seen)[:-KEEP_MINUTES]:
                    del self._seen[old]
                    self._arrived.pop(old, None)
        self._wake.set()

    def on_quote(self, quote: OptionQuote) -> None:
        """A streamed option NBBO (marks the contract at its mid)."""
        with self._lock:
            self._quotes[quote.symbol] = quote

    def on_status(self, status: FeedStatus) -> None:
        """A change of the source's health (shown in ``/health``)."""
        self._status = status

    # -- what the runner reads ----------------------------------------------------------------
    def pump(self, now: datetime) -> int:
        self._wake.clear()
        with self._lock:
            new, self._new = self._new, 0
        return new

    def closed_minute(self, now: datetime) -> datetime | None:
        """The newest minute closed by ``now`` once its bars are in (every expected symbol's,
        or ``grace_s`` after its close), else the one before: one per clock minute, with or
        without bars (a strategy's time rules, e.g. flat before the close, run on every one)."""
        newest = now.replace(second=0, microsecond=0) - MINUTE
        with self._lock:
            got = self._seen.get(newest, set())
        complete = self.expected is not None and self.expected <= got
        if complete or (now - newest - MINUTE).total_seconds() >= self.grace_s:
            return newest
        return newest - MINUTE

    def arrival(self, minute: datetime) -> float | None:
        with self._lock:
            return self._arrived.get(minute)

    def minute_snapshot(
        self, base: MarketSnapshot, minute: datetime, symbols: Iterable[str] | None = None
    ) -> MarketSnapshot:
        """What a "1m" strategy sees at the close of ``minute``: the session's closed minutes
        of ``symbols`` (``intraday``), their last closes over ``base``'s prices, daily history
        and chains before the session, and ``features["session_open"]`` /
        ``["session_close"]`` (the calendar's regular hours of the session, UTC)."""
        close = minute + MINUTE
        session = new_york_date(minute)
        frame, last = self.frame.bars(session, symbols, closed_by=close)
        prices = {**base.prices, **last}
        history = base.history
        if base.session >= session:  # today's daily bar exists only after the close
            history = history.filter(pl.col("session") < session)
        opens, closes = session_hours(session)
        features = {**base.features, "session_open": opens, "session_close": closes}
        return MarketSnapshot(
            close,
            session,
            prices,
            history,
            dict(base.chains),
            features,
            intraday=frame,
            vol_features=dict(base.vol_features),  # the last closed session's, like the chains
            intraday_features=dict(base.intraday_features),  # likewise
        )

    def marks(
        self,
        base: Mapping[str, Quote],
        snapshot: MarketSnapshot | None,
        contracts: Collection[str] | None = None,
    ) -> dict[str, Quote]:
        """``base`` with, for the session after ``snapshot``'s: each symbol's last minute close,
        each chain repriced at its underlying's new spot, and streamed option quotes.

        ``contracts``: reprice only these option contracts (the book's and open orders'; the
        others keep ``base``'s daily mark). Repricing every contract of every chain on every bar
        cost ~140 ms a bar on the demo's chains; None reprices all.
        """
        out = dict(base)
        spots: dict[str, float] = {}
        after = snapshot.session if snapshot is not None else date.min
        with self._lock:
            symbols = list(self._symbols)
        for symbol in symbols:
            ts = self.book.last_ts(symbol)
            bar = self.book.bar(symbol, ts) if ts is not None else None
            if bar is None or new_york_date(ts) <= after:  # type: ignore[arg-type]
                continue
            spots[symbol] = bar.close
            out[symbol] = Quote(NAN, NAN, bar.close, bar.ts + MINUTE, EQUITY_GREEKS)
        if snapshot is not None:
            wanted = None if contracts is None else list(contracts)
            for underlying, chain in snapshot.chains.items():
                if underlying not in spots or wanted == []:
                    continue
                if wanted is not None:
                    chain = chain.filter(pl.col("contract").is_in(wanted))
                out.update(reprice_chain(chain, spots[underlying], out[underlying].ts))
        with self._lock:
            streamed = list(self._quotes.values())
        for q in streamed:
            greeks = out[q.symbol].greeks if q.symbol in out else (NAN, NAN, NAN, NAN)
            out[q.symbol] = Quote(q.bid, q.ask, (q.bid + q.ask) / 2, q.ts, greeks)
        return out

    def wait(self, seconds: float) -> bool:
        return self._wake.wait(max(seconds, 0.0))

    def close(self) -> None:
        if self.source is not None and hasattr(self.source, "close"):
            self.source.close()

    def stats(self) -> dict[str, Any]:
        status = self._status
        with self._lock:
            newest = max(self._seen, default=None)
            bars, quotes = self._bars, len(self._quotes)
        return {
            "mode": self.mode,
            "bars": bars,
            "option_quotes": quotes,
            "newest_minute": newest.isoformat() if newest else None,
            "book": self.book.counts(),
            "source": None if status is None else f"{status.feed} {status.state}: {status.message}",
        }
