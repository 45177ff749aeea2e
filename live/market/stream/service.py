"""MarketStream: the market-data stream others use (runner feed, lake writer, ``stream status``).

One object ties the layer together: it subscribes its symbols through the process-wide
:class:`~live.market.stream.hub.StreamHub` (so every consumer in the process shares one socket
per key and feed), applies every minute bar to its :class:`~live.market.stream.minutes.MinuteBook`
(revisions once, duplicates and reordering harmless), and runs a gap worker: after every
(re)connect and every ``gap_interval`` seconds it asks the :class:`~live.market.stream.gaps.
GapTracker` which of today's minutes are unaccounted for and fetches them from REST
(:class:`~live.market.stream.backfill.RestBackfill`) into the book with ``source="backfill"``.
``on_bar`` sees each minute once when it first lands and again for each revision. A websocket
frame's bars arrive together (the hub's ``on_bars``) and are booked under one lock
(:meth:`~live.market.stream.minutes.MinuteBook.apply_many`) before ``on_bar`` runs for each.

``stats()`` is what ``stream status`` prints: per feed its state and message, symbols, last
exchange time and lag, reconnects; the book's new/revision/duplicate counts; gaps found, filled
and verified empty; the time the last backfill took after a reconnect.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from contracts.calendar import is_session, new_york_date, previous_session
from live.errors import ConfigError
from live.market.stream.alpaca_source import AlpacaConnection, AlpacaStreamConfig, config_from_env
from live.market.stream.backfill import RestBackfill, backfill_from_env
from live.market.stream.backfill import option_contracts as option_contracts_for
from live.market.stream.gaps import DEFAULT_SETTLE, GapTracker
from live.market.stream.hub import Connection, EventHandler, Handle, StreamHub, default_hub
from live.market.stream.minutes import MinuteBook
from live.market.stream.model import (
    BarHandler,
    FeedState,
    FeedStatus,
    MinuteBar,
    OptionQuote,
    QuoteHandler,
    StatusHandler,
)
from strategies.models import MINUTE

log = logging.getLogger("live.market.stream")

Source = Literal["alpaca", "polygon"]
SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-/]{0,9}$")
OCC = re.compile(r"^[A-Z][A-Z0-9.]{0,5}\d{6}[CP]\d{8}$")
DEFAULT_STOCK_CHANNELS = ("bars", "updatedBars")
DEFAULT_GAP_INTERVAL = 15.0
DELAYED_SIP = timedelta(minutes=15)


def check_symbols(symbols: Iterable[str], pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
    """Upper-cased, de-duplicated symbols; one clear error naming the first bad one."""
    out = tuple(dict.fromkeys(s.strip().upper() for s in symbols if s.strip()))
    bad = [s for s in out if not pattern.match(s)]
    if bad:
        example = "SPY240621C00500000" if what == "option" else "AAPL"
        raise ConfigError(f"{what} symbol {bad[0]!r} is not valid; give symbols like {example}")
    return out


class MarketStream:
    """Streams minute bars (and option quotes) with gap backfill; see the module docstring.

    Args:
        symbols: Stock symbols for minute bars (and ``channels``).
        option_contracts: OCC option symbols for quotes (e.g. ``SPY240621C00500000``).
        option_underlyings: Underlyings whose near-the-money contracts (expiring within 45 days)
            are added to ``option_contracts``, looked up once from Alpaca's chain snapshot.
        source: ``"alpaca"`` (default) or ``"polygon"``.
        env: Where settings and keys come from (default ``os.environ``).
        on_bar, on_quote, on_status, on_event: Consumer callbacks (run on stream threads; must
            not block). ``on_event(channel, dict)`` gets trades, stock quotes, statuses, LULD.
        channels: Stock channels to subscribe (bars and updatedBars always included).
        hub: The connection registry (default: the process-wide one).
        clock: The wall clock (tests pass a controllable one); exchange times never use it.
        backfill: REST backfill; default built from ``env`` for Alpaca, none for Polygon;
            ``False`` disables it.
        gap_interval: Seconds between timed gap checks (a (re)connect triggers one at once).
        settle: How long after a minute closes its bar counts as missing.
    """

    def __init__(
        self,
        symbols: Iterable[str] = (),
        option_contracts: Iterable[str] = (),
        *,
        option_underlyings: Iterable[str] = (),
        source: Source = "alpaca",
        env: Mapping[str, str] | None = None,
        on_bar: BarHandler | None = None,
        on_quote: QuoteHandler | None = None,
        on_status: StatusHandler | None = None,
        on_event: EventHandler | None = None,
        channels: Iterable[str] = DEFAULT_STOCK_CHANNELS,
        hub: StreamHub | None = None,
        clock: Callable[[], datetime] | None = None,
        backfill: RestBackfill | Literal[False] | None = None,
        gap_interval: float = DEFAULT_GAP_INTERVAL,
        settle: timedelta = DEFAULT_SETTLE,
    ) -> None:
        self.env = os.environ if env is None else env
        self.symbols = check_symbols(symbols, SYMBOL, "stock")
        self.clock = clock or (lambda: datetime.now(UTC))
        underlyings = check_symbols(option_underlyings, SYMBOL, "underlying")
        if underlyings and source != "alpaca":
            raise ConfigError("option underlyings are resolved on Alpaca; give --options contracts")
        resolved = (
            option_contracts_for(underlyings, self.env, on=new_york_date(self.clock()))
            if underlyings
            else ()
        )
        self.contracts = check_symbols((*option_contracts, *resolved), OCC, "option")
        if not self.symbols and not self.contracts:
            raise ConfigError("nothing to stream: give stock symbols and/or option contracts")
        if source not in ("alpaca", "polygon"):
            raise ConfigError(f"stream source {source!r}: use 'alpaca' or 'polygon'")
        self.source = source
        self.channels = tuple(dict.fromkeys((*DEFAULT_STOCK_CHANNELS, *channels)))
        self.book = MinuteBook()
        self.hub = hub or default_hub()
        self.gap_interval = gap_interval
        self._on_bar, self._on_quote, self._on_status = on_bar, on_quote, on_status
        self._on_event = on_event
        self._plans = self._connection_plans()
        if self.config is not None and self.config.feed == "delayed_sip":
            settle += DELAYED_SIP  # its bars arrive 15 minutes late: not missing before that
        self.gaps = GapTracker(settle=settle)
        self._backfill: RestBackfill | None = self._make_backfill(backfill)
        self._handles: list[Handle] = []
        self._status: dict[str, FeedStatus] = {}
        self._last_quote: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._gap_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._worker: threading.Thread | None = None
        self._connected_at: float | None = None
        self.timing: dict[str, float | None] = {"last_pass_s": None, "reconnect_to_filled_s": None}
        self._passes = 0
        self._backfill_errors = 0

    # -- wiring -------------------------------------------------------------------------------
    def _connection_plans(self) -> list[tuple[tuple[str, ...], Any, dict[str, tuple[str, ...]]]]:
        """(hub key, connection factory, channel -> symbols) per socket this stream needs."""
        plans: list[tuple[tuple[str, ...], Any, dict[str, tuple[str, ...]]]] = []
        if self.source == "alpaca":
            cfg = config_from_env(self.env)
            self.config: AlpacaStreamConfig | None = cfg
            for kind, symbols, chans, feed in (
                ("stocks", self.symbols, self.channels, cfg.feed),
                ("options", self.contracts, ("quotes",), cfg.options_feed),
            ):
                if symbols:
                    key = ("alpaca", cfg.key_id, kind, feed)
                    plans.append((key, _alpaca_factory(cfg, kind), dict.fromkeys(chans, symbols)))
            return plans
        from live.market.stream.polygon_source import (  # noqa: PLC0415 - optional source
            PolygonConnection,
            polygon_config_from_env,
        )

        pcfg = polygon_config_from_env(self.env)
        self.config = None
        fp = hashlib.sha256(pcfg.api_key.encode()).hexdigest()[:12]
        for market, symbols, chan in (
            ("stocks", self.symbols, "bars"),
            ("options", self.contracts, "quotes"),
        ):
            if symbols:

                def factory(sink: Any, st: Any, conn: Any, market: str = market) -> Connection:
                    return PolygonConnection(pcfg, market, sink, st, conn)

                plans.append((("polygon", fp, market), factory, {chan: symbols}))
        return plans

    def _make_backfill(self, given: RestBackfill | Literal[False] | None) -> RestBackfill | None:
        if given is False or not self.symbols:
            return None
        if given is not None:
            return given
        if self.source == "alpaca" and self.config is not None:
            return backfill_from_env(self.config.feed, self.env)
        return None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> MarketStream:
        """Subscribe (sharing any open socket) and start the gap worker; returns at once."""
        if self._handles:
            return self
        for key, factory, channels in self._plans:
            self._handles.append(
                self.hub.subscribe(
                    key,
                    factory,
                    dict(channels),
                    on_bar=self._bar,
                    on_quote=self._quote,
                    on_bars=self._bars,
                    on_quotes=self._quotes,
                    on_status=self._feed_status,
                    on_event=self._on_event,
                    on_connected=self._reconnected if key[2] == "stocks" else None,
                )
            )
        if self.symbols:
            self._worker = threading.Thread(target=self._gap_loop, name="stream-gaps", daemon=True)
            self._worker.start()
        return self

    def close(self) -> None:
        """Leave the hub (the last consumer closes the socket) and stop the gap worker."""
        self._closed.set()
        self._wake.set()
        handles, self._handles = self._handles, []
        for h in handles:
            self.hub.unsubscribe(h)
        if self._worker is not None:
            self._worker.join(10)

    def __enter__(self) -> MarketStream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stream callbacks (stream threads) ----------------------------------------------------
    def _bar(self, bar: MinuteBar) -> None:
        self._bars([bar])

    def _bars(self, bars: list[MinuteBar]) -> None:
        """A frame's bars: booked under one lock; ``on_bar`` for each that changed the book."""
        changed = self.book.apply_many(bars)
        on_bar = self._on_bar
        if on_bar is not None:
            for bar in changed:
                try:
                    on_bar(bar)
                except Exception:  # one bad bar must not starve the rest of the frame
                    log.exception("on_bar failed on %s %s", bar.symbol, bar.ts)

    def _quotes(self, quotes: list[OptionQuote]) -> None:
        """A frame's quotes: the last exchange time per contract; ``on_quote`` for each."""
        # one writer per contract (its feed's thread); dict reads and writes are atomic
        last_quote, on_quote = self._last_quote, self._on_quote
        for quote in quotes:
            symbol, ts = quote[0], quote[1]
            last = last_quote.get(symbol)
            if last is None or ts > last:
                last_quote[symbol] = ts
            if on_quote is not None:
                try:
                    on_quote(quote)
                except Exception:  # one bad quote must not starve the rest of the frame
                    log.exception("on_quote failed on %s", symbol)

    def _quote(self, quote: OptionQuote) -> None:
        self._quotes([quote])

    def _feed_status(self, status: FeedStatus) -> None:
        with self._lock:
            self._status[status.feed] = status
        if self._on_status is not None:
            self._on_status(status)

    def _reconnected(self) -> None:
        self._connected_at = time.monotonic()
        self._wake.set()

    # -- gaps ---------------------------------------------------------------------------------
    def _gap_loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.gap_interval)
            self._wake.clear()
            if self._closed.is_set():
                return
            connected_at, self._connected_at = self._connected_at, None
            try:
                self.check_gaps()
            except Exception as exc:  # noqa: BLE001 - the next pass retries
                self._backfill_errors += 1
                log.warning("gap backfill failed (%s): retrying next pass", _safe(exc))
            if connected_at is not None:
                self.timing["reconnect_to_filled_s"] = time.monotonic() - connected_at

    def check_gaps(self, now: datetime | None = None) -> int:
        """One gap pass now: find unaccounted minutes, fetch them; returns bars filled."""
        now = now or self.clock()
        session = new_york_date(now)
        self._forget_old(session)
        if not is_session(session):
            return 0
        with self._gap_lock:
            started = time.monotonic()
            received = {s: self.book.minutes(s, session) for s in self.symbols}
            windows = self.gaps.find(session, received, now)
            filled = 0
            if self._backfill is not None:
                for window in windows:
                    for part in self._backfill.fetch(window, now):
                        for bar in part.bars:
                            if self.book.apply(bar) == "new":
                                filled += 1
                                if self._on_bar is not None:
                                    self._on_bar(bar)
                        got: dict[str, set[datetime]] = {}
                        for bar in part.bars:
                            got.setdefault(bar.symbol, set()).add(bar.ts)
                        self.gaps.record(part.window, got, part.provisional_until)
            self._passes += 1
            self.timing["last_pass_s"] = time.monotonic() - started
        return filled

    def _forget_old(self, today: date) -> None:
        """Keep today's and the previous session's bars; older ones are in the lake by now."""
        keep_from = previous_session(today)
        for old in self.book.sessions():
            if old < keep_from:
                self.book.drop_session(old)
                self.gaps.forget_session(old)

    # -- status -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Health and counters for ``stream status`` (no secrets; JSON-serialisable)."""
        now = self.clock()
        feeds: dict[str, Any] = {}
        for key, _factory, channels in self._plans:
            conn = self.hub.connection(key)
            with self._lock:
                status = self._status.get(conn.name) if conn is not None else None
            symbols = sorted({s for v in channels.values() for s in v})
            if key[2] == "stocks":
                lasts = [t for s in symbols if (t := self.book.last_ts(s)) is not None]
                last = max(lasts) + MINUTE if lasts else None  # the latest bar's close
            else:
                quotes = [t for s in symbols if (t := self._last_quote.get(s)) is not None]
                last = max(quotes) if quotes else None
            conn_stats = getattr(conn, "stats", None)
            name = conn.name if conn is not None else feed_name(key)
            feeds[name] = {
                "state": (status.state if status else FeedState.STOPPED).value,
                "message": status.message if status else "not started",
                "code": status.code if status else None,
                "symbols": symbols,
                "last_exchange_ts": last.isoformat() if last else None,
                "lag_s": round((now - last).total_seconds(), 3) if last else None,
                "reconnects": getattr(conn_stats, "reconnects", 0),
                "attempts": getattr(conn_stats, "attempts", 0),
                "messages": getattr(conn_stats, "messages", 0),
                "consumers": self.hub.consumers(key),
                "rejected_symbols": sorted(set(getattr(conn, "rejected", [])) & set(symbols)),
            }
            if key[2] == "stocks":  # this stream's own book and gap work, on the bars feed
                counts = self.book.counts()
                feeds[name] |= {
                    "gaps_found": self.gaps.stats.found,
                    "gaps_filled": self.gaps.stats.filled,
                    "revisions": counts["revision"],
                    "duplicates": counts["duplicate"],
                }
        counts = self.book.counts()
        g = self.gaps.stats
        bf = self._backfill.stats if self._backfill is not None else None
        return {
            "source": self.source,
            "feeds": feeds,
            "bars": counts,
            "revisions": counts["revision"],
            "duplicates": counts["duplicate"],
            "gaps": {
                "found": g.found,
                "filled": g.filled,
                "verified_empty": g.empty,
                "windows": g.windows,
                "passes": self._passes,
                "errors": self._backfill_errors,
                **self.timing,
            },
            "backfill": None
            if bf is None
            else {
                "feed": self._backfill.feed if self._backfill else None,
                "calls": bf.calls,
                "bars": bf.bars,
                "recent_sip_refusals": bf.recent_sip_refusals,
                "errors": bf.errors,
                "last_error": bf.last_error,
            },
        }


def feed_name(key: tuple[str, ...]) -> str:
    """The status name of a hub key (as the connection will call itself)."""
    if key[0] == "alpaca":
        return f"alpaca:{key[3]}" if key[2] == "stocks" else f"alpaca-options:{key[3]}"
    return f"{key[0]}:{key[2]}"


def _alpaca_factory(cfg: AlpacaStreamConfig, kind: str) -> Any:
    def factory(sink: Any, on_status: Any, on_connected: Any) -> Connection:
        return AlpacaConnection(cfg, kind, sink, on_status, on_connected)

    return factory


def _safe(exc: BaseException) -> str:
    """An exception as a short line (type and the vendor's text, never a request's headers)."""
    return f"{type(exc).__name__}: {str(exc)[:200]}"
