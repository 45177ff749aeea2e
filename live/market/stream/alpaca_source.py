"""Alpaca's market-data websockets through alpaca-py 0.44: one socket, its health, raw frames out.

:class:`AlpacaConnection` runs alpaca-py's ``StockDataStream`` (bars, updatedBars, dailyBars,
trades, quotes, statuses, LULD) or ``OptionDataStream`` (msgpack; trades, quotes) in a daemon
thread, as ``live/brokers/alpaca_stream.py`` does for trade updates. alpaca-py keeps the socket:
it reconnects with exponential backoff and equal jitter, re-sends the whole subscription, and with
``data_timeout`` (always set here) reconnects a socket that stays open but goes silent. What it
does not do, and this module adds through a thin subclass of its private hooks (pinned 0.44.0):

- health: every (re)connect, auth error, drop, staleness and post-auth error frame becomes a
  :class:`~live.market.stream.model.FeedStatus`. alpaca-py raises ``ValueError(msg)`` at auth and
  only *logs* error frames after it (405 symbol limit, 407 slow client), so both are mapped from
  the vendor's text to its code here. 409 (insufficient subscription) stops the feed for good
  (alpaca-py returns) and the message names the plan needed;
- frames reach the hub's sink parsed once at the edge (``raw_data=True``: no pydantic per
  frame): bars and updated bars as :class:`MinuteBar` (``source="revision"`` for ``u``),
  option quotes as :class:`OptionQuote`, everything else (trades, stock quotes, daily bars,
  statuses, LULD) as the vendor's dict; ``t`` is always the exchange's time, an aware UTC
  ``datetime``;
- bulk decode (the ingest's hot path, issue 11's throughput target): the socket alpaca-py
  holds is wrapped (:class:`_FrameReader`, set through the ``_ws`` attribute every alpaca-py
  version so far assigns), so each websocket frame, which carries many messages (a minute's
  bars of every symbol), is decoded here in one ``msgpack.unpackb`` (timestamps as integer
  nanoseconds, no ``Timestamp`` object per message) straight into :class:`MinuteBar` /
  :class:`OptionQuote` tuples and handed to the hub as one batch (``sink.many``): alpaca-py's
  per-message loop and coroutine dispatch never see the market data. alpaca-py gets back one
  placeholder market-data message per such frame, so its ``data_timeout`` clock and reconnect
  backoff see the data exactly as before, and any control message in the frame (handled here
  in order when it is an error or a subscription ack). Frames without market data (the
  handshake, acks, errors) pass through untouched. ``tests/stream/test_bulk_decode.py`` pins
  this seam.

Configuration (environment): the keys as the broker reads them (``ALPACA_API_KEY`` /
``ALPACA_SECRET_KEY`` or their ``*_FILE`` mounts, :mod:`live.brokers.credentials`); ``ALPACA_FEED``
(iex | sip | delayed_sip; delayed SIP is reachable only by URL, alpaca-py refuses the enum);
``ALPACA_OPTIONS_FEED`` (indicative | opra); ``ALPACA_DATA_STREAM_URL`` /
``ALPACA_OPTIONS_STREAM_URL`` (a ws:// or wss:// base such as ``wss://stream.data.alpaca.markets``,
the feed path is appended, or a full endpoint); ``ALPACA_STREAM_DATA_TIMEOUT`` (seconds, default
30). Keys never appear in a message, a repr or a log line.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import msgpack
from alpaca.data.enums import DataFeed, OptionsFeed
from alpaca.data.live.option import OptionDataStream
from alpaca.data.live.stock import StockDataStream

from live.brokers.credentials import read_keys
from live.errors import ConfigError
from live.market.stream.hub import WIRE_LOG, ConnectionStats, Sink, now_utc, spawn
from live.market.stream.model import (
    ERROR_STATES,
    FeedState,
    FeedStatus,
    MinuteBar,
    OptionQuote,
)

log = logging.getLogger("live.market.stream")

DEFAULT_STOCK_URL = "wss://stream.data.alpaca.markets"
STOCK_FEEDS = ("iex", "sip", "delayed_sip")
OPTION_FEEDS = ("indicative", "opra")
STOCK_CHANNELS = ("bars", "updatedBars", "dailyBars", "trades", "quotes", "statuses", "lulds")
OPTION_CHANNELS = ("trades", "quotes")
DEFAULT_DATA_TIMEOUT = 30.0
# alpaca-py's keepalive defaults, plus a frame logger that never logs the auth frame
WEBSOCKET_PARAMS = {"ping_interval": 10, "ping_timeout": 180, "max_queue": 1024, "logger": WIRE_LOG}
# The vendor's error texts (alpaca-py hands us the text at auth, the frame after it)
ERROR_TEXTS = {
    "auth failed": 402,
    "auth timeout": 404,
    "symbol limit exceeded": 405,
    "connection limit exceeded": 406,
    "slow client": 407,
    "insufficient subscription": 409,
}
PLAN_NEEDED = {
    "sip": "ALPACA_FEED=sip needs the Algo Trader Plus plan; use ALPACA_FEED=iex (or delayed_sip)",
    "delayed_sip": "ALPACA_FEED=delayed_sip is not in this key's plan; use ALPACA_FEED=iex",
    "iex": "ALPACA_FEED=iex is refused for this key; check the key's market-data plan",
    "opra": "ALPACA_OPTIONS_FEED=opra needs the Algo Trader Plus plan (OPRA); "
    "use ALPACA_OPTIONS_FEED=indicative",
    "indicative": "ALPACA_OPTIONS_FEED=indicative is refused for this key; check its plan",
}
ADVICE = {
    402: "check ALPACA_API_KEY / ALPACA_SECRET_KEY (retrying with backoff)",
    404: "the server saw no auth within 10 s (retrying with backoff)",
    405: "the plan's symbol limit (30 on the basic plan); the subscription is unchanged: "
    "subscribe fewer symbols or upgrade",
    406: "another connection holds this key and feed (another process or notebook?); "
    "one connection per key and feed is allowed; retrying with backoff",
    407: "the client is too slow for the stream; reconnecting",
}

# wire ``T`` -> channel for market data (corrections and cancel errors ride on trades)
WIRE_CHANNELS = {"b": "bars", "u": "updatedBars", "d": "dailyBars", "t": "trades", "q": "quotes"}
WIRE_CHANNELS |= {"s": "statuses", "l": "lulds", "c": "trades", "x": "trades"}
BAR_CHANNELS = frozenset({"bars", "updatedBars"})
RECOVERING = frozenset({FeedState.STALE, FeedState.RECONNECTING, FeedState.SLOW_CLIENT})
Item = MinuteBar | OptionQuote | dict[str, Any]
StatusSink = Callable[[FeedStatus], None]
# alpaca-py is handed this for a frame decoded here: one market-data message (its staleness
# clock and backoff reset on it as on the frame's own data) that our _dispatch drops
DECODED = "\x00decoded-in-bulk"
DECODED_MSG = {"T": "b", "S": DECODED}
DECODED_FRAME: bytes = msgpack.packb([DECODED_MSG])
_unpack, _pack = msgpack.unpackb, msgpack.packb
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_new = tuple.__new__  # a named tuple without its __new__'s argument binding (the hot path)


@dataclass(frozen=True)
class AlpacaStreamConfig:
    """Resolved stream settings; the keys are excluded from ``repr``."""

    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    feed: str = "iex"
    options_feed: str = "indicative"
    stock_url: str = f"{DEFAULT_STOCK_URL}/v2/iex"
    options_url: str = f"{DEFAULT_STOCK_URL}/v1beta1/indicative"
    data_timeout: float = DEFAULT_DATA_TIMEOUT
    min_backoff: float = 1.0  # alpaca-py's default base of its exponential backoff

    @property
    def key_id(self) -> str:
        """A fingerprint of the key pair (the hub's connection key; not the key itself)."""
        return hashlib.sha256(f"{self.api_key}\0{self.secret_key}".encode()).hexdigest()[:12]


def endpoint(value: str | None, version: str, feed: str, var: str) -> str:
    """The websocket endpoint from ``var``'s value (a base gets ``/{version}/{feed}``).

    Raises:
        ConfigError: Not a ws:// or wss:// URL, credentials in it, or a path naming another feed.
    """
    url = (value or DEFAULT_STOCK_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(
            f"{var}={url!r} is not a websocket URL; use wss://stream.data.alpaca.markets "
            f"(or ws://127.0.0.1:PORT for a local fake)"
        )
    if parts.username or parts.password:
        raise ConfigError(f"{var} must not carry credentials; keys come from ALPACA_API_KEY")
    if parts.path in ("", "/"):
        return f"{url}/{version}/{feed}"
    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if last in STOCK_FEEDS + OPTION_FEEDS and last != feed:
        raise ConfigError(
            f"{var}={url!r} names feed {last!r} but the feed setting is {feed!r}; "
            f"give the base URL only or make them agree"
        )
    return url


def config_from_env(env: Mapping[str, str] | None = None) -> AlpacaStreamConfig:
    """Keys, feeds, endpoints and timeout from the environment (see the module docstring)."""
    env = os.environ if env is None else env
    keys = read_keys(env)
    feed = (env.get("ALPACA_FEED") or "iex").strip().lower()
    if feed not in STOCK_FEEDS:
        raise ConfigError(f"ALPACA_FEED={feed!r} is not a stock feed; use one of {STOCK_FEEDS}")
    ofeed = (env.get("ALPACA_OPTIONS_FEED") or "indicative").strip().lower()
    if ofeed not in OPTION_FEEDS:
        raise ConfigError(
            f"ALPACA_OPTIONS_FEED={ofeed!r} is not an options feed; use one of {OPTION_FEEDS}"
        )
    raw_timeout = env.get("ALPACA_STREAM_DATA_TIMEOUT") or str(DEFAULT_DATA_TIMEOUT)
    try:
        timeout = float(raw_timeout)
    except ValueError:
        timeout = -1.0
    if not timeout > 0:
        raise ConfigError(
            f"ALPACA_STREAM_DATA_TIMEOUT={raw_timeout!r} must be a positive number of seconds"
        )
    return AlpacaStreamConfig(
        keys.api_key,
        keys.secret_key,
        feed,
        ofeed,
        endpoint(env.get("ALPACA_DATA_STREAM_URL"), "v2", feed, "ALPACA_DATA_STREAM_URL"),
        endpoint(
            env.get("ALPACA_OPTIONS_STREAM_URL") or env.get("ALPACA_DATA_STREAM_URL"),
            "v1beta1",
            ofeed,
            "ALPACA_OPTIONS_STREAM_URL",
        ),
        timeout,
    )


def error_code(text: str) -> int | None:
    """Alpaca's error code for an error text (``"connection limit exceeded"`` -> 406)."""
    low = text.lower()
    return next((code for t, code in ERROR_TEXTS.items() if t in low), None)


# bar start (wire time in integer nanoseconds) -> one shared datetime: a minute's frame carries
# the same start for every symbol, so each bar neither converts it (about 1 us) nor holds its
# own copy (48 B a bar), and its hash is computed once for the book's dicts
_BAR_STARTS: dict[Any, datetime] = {}


def exchange_time(t: Any) -> datetime:
    """A wire ``t`` as an aware UTC datetime (microseconds, as msgpack's ``to_datetime``).

    ``t``: integer nanoseconds (a msgpack Timestamp decoded with ``timestamp=2``), a msgpack
    ``Timestamp``, RFC 3339 text, or already a datetime.
    """
    if type(t) is int:
        return _EPOCH + timedelta(microseconds=t // 1000)
    if isinstance(t, datetime):
        return t
    if isinstance(t, msgpack.Timestamp):
        return t.to_datetime()
    return datetime.fromisoformat(str(t))


def _bar_start(t: Any) -> datetime:
    """The bar start of a wire ``t`` (see :func:`exchange_time`), one shared object per minute."""
    key = t.to_unix_nano() if isinstance(t, msgpack.Timestamp) else t
    found = _BAR_STARTS.get(key)
    if found is None:
        if len(_BAR_STARTS) >= 4096:  # a few sessions' minutes; bounded
            _BAR_STARTS.clear()
        found = _BAR_STARTS[key] = exchange_time(t)
    return found


def parse(kind: str, channel: str, msg: dict[str, Any]) -> Item:
    """One vendor message as our type (see the module docstring); ``t`` -> aware UTC datetime.

    The per-message path (:func:`parse_many` does a frame's messages at once).
    """
    got = parse_many(kind, channel, [msg], _raise)
    return got[0]


def _raise(msg: dict[str, Any], exc: Exception) -> None:
    raise exc


def parse_many(
    kind: str,
    channel: str,
    msgs: list[dict[str, Any]],
    malformed: Callable[[dict[str, Any], Exception], None],
) -> list[Item]:
    """A frame's messages of one ``channel`` as our types, in order; ``malformed(msg, exc)`` for
    each that lacks a field or holds a wrong type (it is left out)."""
    out: list[Any] = []
    keep = out.append
    if channel in BAR_CHANNELS:
        source = "revision" if channel == "updatedBars" else "stream"
        starts = _BAR_STARTS
        for m in msgs:  # model.minute_bar's fields, inlined: a call per bar costs ~0.1 us
            try:
                t = m["t"]
                ts = starts.get(t) if type(t) is int else None
                keep(
                    _new(
                        MinuteBar,
                        (
                            m["S"],
                            ts or _bar_start(t),
                            float(m["o"]),
                            float(m["h"]),
                            float(m["l"]),
                            float(m["c"]),
                            float(m["v"]),
                            float(m.get("vw") or 0.0),
                            int(m.get("n") or 0),
                            source,
                        ),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                malformed(m, exc)
    elif kind == "options" and channel == "quotes":
        for m in msgs:
            try:
                keep(
                    _new(
                        OptionQuote,
                        (
                            m["S"],
                            exchange_time(m["t"]),
                            float(m["bp"]),
                            float(m["ap"]),
                            float(m["bs"]),
                            float(m["as"]),
                            str(m.get("bx", "")),
                            str(m.get("ax", "")),
                        ),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                malformed(m, exc)
    else:
        for m in msgs:
            t = m.get("t")
            if t is not None:
                try:
                    m["t"] = exchange_time(t)
                except (TypeError, ValueError) as exc:
                    malformed(m, exc)
                    continue
            keep(m)
    return cast(list[Item], out)


class _FrameReader:
    """The socket alpaca-py reads, as alpaca-py sees it: frames with market data are decoded in
    bulk by the connection (``_decode``) and replaced by what alpaca-py still needs to see."""

    def __init__(self, ws: Any, observer: AlpacaConnection) -> None:
        self.ws, self._observer = ws, observer

    async def recv(self) -> Any:
        return self._observer._decode(await self.ws.recv())

    def __getattr__(self, name: str) -> Any:  # send, close, ...: the socket's own
        return getattr(self.ws, name)


class _Observed:
    """alpaca-py hooks (0.44.0 private methods) reporting to an :class:`AlpacaConnection`."""

    _observer: AlpacaConnection
    _socket: Any = None

    @property
    def _ws(self) -> Any:
        return self._socket

    @_ws.setter
    def _ws(self, ws: Any) -> None:
        # every socket alpaca-py opens (or a test hands it) is read through the bulk decoder
        observer = getattr(self, "_observer", None)
        if ws is not None and observer is not None and not isinstance(ws, _FrameReader):
            ws = _FrameReader(ws, observer)
        self._socket = ws

    async def _start_ws(self) -> None:
        self._observer._attempt()
        try:
            await super()._start_ws()  # type: ignore[misc]
        except ValueError as exc:
            self._observer._refused(str(exc))
            raise
        except Exception as exc:
            self._observer._lost(exc)
            raise
        self._observer._authenticated()

    async def _consume(self) -> bool:
        try:
            stale: bool = await super()._consume()  # type: ignore[misc]
        except Exception as exc:
            self._observer._lost(exc)
            raise
        if stale:
            self._observer._stale()
        return stale

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg.get("T")
        channel = WIRE_CHANNELS.get(kind)  # type: ignore[arg-type]
        if channel is not None and "S" in msg:
            if msg["S"] != DECODED:  # (the placeholder of a frame decoded in bulk)
                # market data alpaca-py decoded itself (not through _FrameReader): straight to
                # the connection, no coroutine per message; the hub filters by symbol
                self._observer._frame(channel, msg)
        elif not self._observer._control(msg):
            await super()._dispatch(msg)  # type: ignore[misc]


class _Stocks(_Observed, StockDataStream):
    pass


class _Options(_Observed, OptionDataStream):
    pass


class AlpacaConnection:
    """One alpaca-py data stream (one key, one feed) in a daemon thread.

    Args:
        config: Keys, feeds and endpoints.
        kind: ``"stocks"`` or ``"options"``.
        sink: The hub's :class:`~live.market.stream.hub.Sink`: called on the stream thread with
            a websocket frame's parsed items (``sink.many``) or one item; must not block.
        on_status: Called on the stream thread with every health change.
        on_connected: Called on the stream thread after each successful (re)connect.
    """

    def __init__(
        self,
        config: AlpacaStreamConfig,
        kind: str,
        sink: Sink,
        on_status: StatusSink,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        if kind not in ("stocks", "options"):
            raise ConfigError(f"stream kind {kind!r}: use 'stocks' or 'options'")
        self.kind = kind
        self.feed = config.feed if kind == "stocks" else config.options_feed
        self.name = f"alpaca:{self.feed}" if kind == "stocks" else f"alpaca-options:{self.feed}"
        self.channels = STOCK_CHANNELS if kind == "stocks" else OPTION_CHANNELS
        self.stats = ConnectionStats()
        self._sink, self._on_status, self._on_connected = sink, on_status, on_connected
        self._lock = threading.Lock()
        self.status = FeedStatus(self.name, FeedState.CONNECTING, "not started", now_utc())
        self.stream: StockDataStream | OptionDataStream
        if kind == "stocks":
            # delayed_sip is reachable only through the URL (StockDataStream refuses the enum)
            feed = DataFeed.SIP if self.feed == "sip" else DataFeed.IEX
            self.stream = _Stocks(
                config.api_key,
                config.secret_key,
                raw_data=True,
                feed=feed,
                url_override=config.stock_url,
                data_timeout=config.data_timeout,
                websocket_params=WEBSOCKET_PARAMS,
            )
        else:
            self.stream = _Options(
                config.api_key,
                config.secret_key,
                raw_data=True,
                feed=OptionsFeed(self.feed),
                url_override=config.options_url,
                data_timeout=config.data_timeout,
                websocket_params=WEBSOCKET_PARAMS,
            )
        self.stream._observer = self  # type: ignore[union-attr]
        self.stream._reconnect_min_backoff = config.min_backoff
        self.stream._name = self.name
        self._handlers = {ch: self._handler(ch) for ch in self.channels}
        self._thread: threading.Thread | None = None
        self._closing = False
        self.rejected: list[str] = []  # asked for, left out of the vendor's ack
        self._subscribed: dict[str, set[str]] = {ch: set() for ch in self.channels}

    # -- control (any thread but the stream's) ------------------------------------------------
    def start(self) -> AlpacaConnection:
        """Connect in the background (returns at once; alpaca-py connects once subscribed)."""
        self._thread = self._thread or spawn(self._run, self.name)
        return self

    def _run(self) -> None:
        try:
            self.stream.run()
        except Exception as exc:  # noqa: BLE001 - a dead thread must show as a state
            self._set(FeedState.STOPPED, f"{self.name} stream thread ended: {exc}")

    @property
    def alive(self) -> bool:
        """Whether the stream thread still runs (False after a 409 or close)."""
        return self._thread is not None and self._thread.is_alive()

    def subscribe(self, channel: str, symbols: Iterable[str]) -> None:
        """Add ``symbols`` to ``channel`` (alpaca-py sends the whole set; the vendor adds)."""
        new = set(symbols) - self._subscribed[self._channel(channel)]
        if not new:
            return
        self._subscribed[channel] |= new
        handlers = self.stream._handlers[channel]
        try:
            self.stream._subscribe(self._handlers[channel], tuple(sorted(new)), handlers)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - socket dropped: the set is re-sent on reconnect
            log.info(
                "%s: subscribe deferred to the next connect (%s)", self.name, type(exc).__name__
            )

    def unsubscribe(self, channel: str, symbols: Iterable[str]) -> None:
        """Remove ``symbols`` from ``channel``."""
        gone = sorted(set(symbols) & self._subscribed[self._channel(channel)])
        if not gone:
            return
        self._subscribed[channel] -= set(gone)
        try:
            self.stream._unsubscribe(channel, gone)
        except Exception as exc:  # noqa: BLE001 - the handlers are gone; the vendor set follows
            for s in gone:
                self.stream._handlers[channel].pop(s, None)
            log.info("%s: unsubscribe not sent (%s)", self.name, type(exc).__name__)

    def symbols(self) -> dict[str, set[str]]:
        """The channel -> symbols set asked of the vendor."""
        return {ch: set(s) for ch, s in self._subscribed.items() if s}

    def close(self, timeout: float = 5.0) -> None:
        """Stop the stream and wait for its thread (best effort)."""
        loop = self.stream._loop
        self._closing = True
        try:
            if loop is not None and loop.is_running():
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
            else:
                self.stream._stop_stream_queue.put_nowait({"should_stop": True})
        except Exception as exc:  # noqa: BLE001 - closing must not raise
            log.debug("%s stop: %s", self.name, type(exc).__name__)
        if self._thread is not None:
            self._thread.join(timeout)
        if self.status.state != FeedState.INSUFFICIENT_SUBSCRIPTION:
            self._set(FeedState.STOPPED, f"{self.name} closed")

    async def _shutdown(self) -> None:
        await self.stream.stop_ws()
        await self.stream.close()  # wakes the receive wait at once instead of after up to 5 s

    def _channel(self, channel: str) -> str:
        if channel not in self.channels:
            raise ConfigError(f"{self.name} has no channel {channel!r}; use one of {self.channels}")
        return channel

    # -- alpaca-py callbacks (stream thread) --------------------------------------------------
    def _handler(self, channel: str) -> Callable[[dict[str, Any]], Any]:
        async def handle(msg: dict[str, Any]) -> None:  # only if alpaca-py dispatches itself
            self._frame(channel, msg)

        return handle

    def _decode(self, frame: Any) -> Any:
        """One websocket frame in bulk (see the module docstring); returns what alpaca-py gets.

        Market data are parsed per run of one channel and handed to ``sink.many``; error frames
        and subscription acks among them are handled here in their place. A frame without
        market data, or one that does not decode, is returned as it came.
        """
        if type(frame) is not bytes:
            return frame
        try:
            msgs = _unpack(frame, timestamp=2)
        except Exception:  # noqa: BLE001 - alpaca-py decodes it again and raises its own error
            return frame
        if type(msgs) is not list:
            return frame
        channels = WIRE_CHANNELS
        run: list[dict[str, Any]] = []
        channel: str | None = None
        control: list[dict[str, Any]] = []  # before the first market data, or unhandled
        count = 0
        for m in msgs:
            if type(m) is not dict:
                return frame
            ch = channels.get(m.get("T"))  # type: ignore[arg-type]
            if ch is not None and "S" in m:
                if ch is not channel:
                    if run:
                        self._deliver(channel, run)  # type: ignore[arg-type]
                        run = []
                    if not count:  # the frame's first market data: what came before, first
                        control = [c for c in control if not self._control(c)]
                    if channel is None:  # first data of the frame or after a control message
                        self._data_arrived()
                    channel = ch
                run.append(m)
                count += 1
            elif count:
                if run:
                    self._deliver(channel, run)  # type: ignore[arg-type]
                    run, channel = [], None
                if not self._control(m):
                    control.append(m)
            else:
                control.append(m)
        if not count:
            return frame
        if run:
            self._deliver(channel, run)  # type: ignore[arg-type]
        self.stats.messages += count
        self.stats.frames += 1
        return _pack([*control, DECODED_MSG]) if control else DECODED_FRAME

    def _data_arrived(self) -> None:
        self.stats.last_message_s = time.time()
        if self.status.state in RECOVERING:
            self._set(FeedState.STREAMING, f"{self.name}: market data flowing again")

    def _deliver(self, channel: str, msgs: list[dict[str, Any]]) -> None:
        items = parse_many(self.kind, channel, msgs, self._malformed)
        if not items:
            return
        try:
            self._sink.many(channel, items)
        except Exception:  # a consumer's bug must not kill the socket
            log.exception("%s: %s frame handler failed", self.name, channel)

    def _malformed(self, msg: dict[str, Any], exc: Exception) -> None:
        self.stats.malformed += 1
        log.warning("%s: malformed %s message ignored (%s)", self.name, msg.get("T"), exc)

    def _control(self, msg: dict[str, Any]) -> bool:
        """An error frame or a subscription ack; False for anything else (alpaca-py's)."""
        kind = msg.get("T")
        if kind == "error":
            self._error_frame(msg)  # a health state (alpaca-py would only log it)
        elif kind == "subscription":
            self._acked(msg)
        else:
            return False
        return True

    def _frame(self, channel: str, msg: dict[str, Any]) -> None:
        stats = self.stats
        stats.messages += 1
        stats.last_message_s = time.time()
        if self.status.state in RECOVERING:
            self._set(FeedState.STREAMING, f"{self.name}: market data flowing again")
        try:
            item = parse(self.kind, channel, msg)
        except (KeyError, TypeError, ValueError) as exc:
            stats.malformed += 1
            log.warning("%s: malformed %s frame ignored (%s)", self.name, channel, exc)
            return
        try:
            self._sink(channel, item)
        except Exception:  # a consumer's bug must not kill the socket
            log.exception("%s: %s frame handler failed", self.name, channel)

    def _attempt(self) -> None:
        self.stats.attempts += 1
        if self.stats.connects:
            self._set(FeedState.RECONNECTING, f"{self.name}: reconnecting")

    def _authenticated(self) -> None:
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        n = len({s for v in self._subscribed.values() for s in v})
        self._set(FeedState.STREAMING, f"{self.name}: connected, {n} symbols")
        if self._on_connected is not None:
            try:
                self._on_connected()
            except Exception:
                log.exception("%s: on_connected failed", self.name)

    def _refused(self, text: str) -> None:
        code = error_code(text)
        if code == 409:
            msg = f"{self.name}: insufficient subscription (409), stopped: {PLAN_NEEDED[self.feed]}"
            self._set(FeedState.INSUFFICIENT_SUBSCRIPTION, msg, code)
        elif code in ERROR_STATES:
            self._set(ERROR_STATES[code], f"{self.name}: {text} ({code}): {ADVICE[code]}", code)
        else:
            self._set(FeedState.RECONNECTING, f"{self.name}: handshake failed: {text}")

    def _lost(self, exc: BaseException) -> None:
        if self.status.state not in ERROR_STATES.values() and not self._closing:
            what = type(exc).__name__
            self._set(FeedState.RECONNECTING, f"{self.name}: connection lost ({what}); retrying")

    def _stale(self) -> None:
        timeout = self.stream._data_timeout
        msg = f"{self.name}: no market data for {timeout:.0f} s (data_timeout); reconnecting"
        self._set(FeedState.STALE, msg)

    def _acked(self, ack: dict[str, Any]) -> None:
        """The vendor's whole current set: symbols we asked for and it left out are unknown."""
        missing = sorted(
            {s for ch, want in self._subscribed.items() for s in want - set(ack.get(ch) or [])}
        )
        if missing != self.rejected:
            self.rejected = missing
            if missing:
                shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
                self._set(
                    self.status.state,
                    f"{self.name}: the vendor did not subscribe {shown} (unknown symbols?); "
                    "check the symbols",
                    self.status.code,
                )

    def _error_frame(self, frame: dict[str, Any]) -> None:
        text = str(frame.get("msg", ""))
        raw_code = frame.get("code")
        code = raw_code if isinstance(raw_code, int) else error_code(text)
        if code in ERROR_STATES and code in ADVICE:
            self._set(ERROR_STATES[code], f"{self.name}: {text} ({code}): {ADVICE[code]}", code)
        else:
            log.warning("%s: error frame %s (%s)", self.name, text, code)

    def _set(self, state: FeedState, message: str, code: int | None = None) -> None:
        status = FeedStatus(self.name, state, message, now_utc(), code)
        with self._lock:
            self.status = status
        level = (
            logging.INFO if state in (FeedState.STREAMING, FeedState.STOPPED) else logging.WARNING
        )
        log.log(level, "%s", message)
        try:
            self._on_status(status)
        except Exception:
            log.exception("%s: status handler failed", self.name)
