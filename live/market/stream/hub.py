"""One vendor socket per (source, key, feed) in the process, fanned out to every consumer.

Alpaca refuses a second connection on a key and feed with 406 (the newcomer loses), and Polygon
closes the *older* one (``max_connections``): two consumers in one process that each opened a
socket would lock each other out. So every consumer (the runner's intraday feed, the lake
writer, ``stream status``) subscribes through :class:`StreamHub`; the hub opens the connection on
the first subscription, sends the vendor the union of every consumer's symbols, routes each
parsed frame to the consumers that asked for its symbol, and closes the socket when the last
consumer leaves. Callbacks run on the stream thread and must not block (queue the work).

A source may hand the hub a whole websocket frame at once (``sink.many(channel, items)``): the
hub then routes per frame, not per message, and a consumer with a batch callback (``on_bars``,
``on_quotes``) gets the frame's items for its symbols as one list, in order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from live.market.stream.model import (
    BarHandler,
    FeedStatus,
    MinuteBar,
    OptionQuote,
    QuoteHandler,
    StatusHandler,
)

log = logging.getLogger("live.market.stream")
# The websockets library logs every frame at DEBUG, the auth frame (with the secret) included.
# Sources hand it this logger, pinned at INFO, so a DEBUG root logger never records a frame.
WIRE_LOG = logging.getLogger("live.market.stream.wire")
WIRE_LOG.setLevel(logging.INFO)

EventHandler = Callable[[str, dict[str, Any]], None]  # (channel, vendor dict)
BarsHandler = Callable[[list[MinuteBar]], None]  # a frame's bars, in order
QuotesHandler = Callable[[list[OptionQuote]], None]


@dataclass
class ConnectionStats:
    """What one socket did (for ``stream status``); every source keeps one."""

    attempts: int = 0
    connects: int = 0
    reconnects: int = 0
    messages: int = 0
    malformed: int = 0
    frames: int = 0  # websocket frames whose market data were decoded in bulk (Alpaca)
    last_message_s: float | None = None  # epoch seconds (receive clock), cheap per message


def spawn(target: Callable[[], None], name: str) -> threading.Thread:
    """Start ``target`` in a daemon thread (a source's socket loop)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def now_utc() -> datetime:
    """The receive clock (about connections only; market data carries the exchange's time)."""
    return datetime.now(UTC)


class Connection(Protocol):
    """What the hub needs of a source's socket (AlpacaConnection, PolygonConnection)."""

    name: str
    status: FeedStatus
    stats: ConnectionStats

    def start(self) -> Any: ...
    def subscribe(self, channel: str, symbols: Iterable[str]) -> None: ...
    def unsubscribe(self, channel: str, symbols: Iterable[str]) -> None: ...
    def symbols(self) -> dict[str, set[str]]: ...
    def close(self, timeout: float = 5.0) -> None: ...


class Sink:
    """Where a connection hands parsed market data: ``sink(channel, item)`` one at a time, or
    ``sink.many(channel, items)`` a frame's items of one channel and type at once."""

    __slots__ = ("_holder",)

    def __init__(self, holder: dict[str, _Shared]) -> None:
        self._holder = holder  # holds the connection's shared state once it exists

    def __call__(self, channel: str, item: Any) -> None:
        _route(self._holder["s"], channel, item)

    def many(self, channel: str, items: list[Any]) -> None:
        _route_many(self._holder["s"], channel, items)


# (sink, on_status, on_connected) -> a connection, not yet started
ConnectionFactory = Callable[[Sink, Callable[[FeedStatus], None], Callable[[], None]], Connection]


@dataclass(eq=False)
class Handle:
    """One consumer's subscription; pass it to :meth:`StreamHub.unsubscribe`."""

    key: tuple[str, ...]
    channels: dict[str, frozenset[str]]
    on_bar: BarHandler | None = None
    on_quote: QuoteHandler | None = None
    on_status: StatusHandler | None = None
    on_event: EventHandler | None = None
    on_connected: Callable[[], None] | None = None
    active: bool = field(default=True)
    on_bars: BarsHandler | None = None  # preferred over on_bar for a whole frame
    on_quotes: QuotesHandler | None = None  # preferred over on_quote for a whole frame


@dataclass(eq=False)
class _Shared:
    conn: Connection
    handles: list[Handle] = field(default_factory=list)
    # channel -> symbol -> handles; replaced whole on change, read lock-free by the stream thread
    routes: dict[str, dict[str, tuple[Handle, ...]]] = field(default_factory=dict)
    # channel -> the handles when every symbol routes to the same ones (no per-item grouping)
    uniform: dict[str, tuple[Handle, ...]] = field(default_factory=dict)


class StreamHub:
    """The process's registry of shared vendor connections (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._shared: dict[tuple[str, ...], _Shared] = {}

    def subscribe(
        self,
        key: tuple[str, ...],
        factory: ConnectionFactory,
        channels: dict[str, Iterable[str]],
        *,
        on_bar: BarHandler | None = None,
        on_quote: QuoteHandler | None = None,
        on_status: StatusHandler | None = None,
        on_event: EventHandler | None = None,
        on_connected: Callable[[], None] | None = None,
        on_bars: BarsHandler | None = None,
        on_quotes: QuotesHandler | None = None,
    ) -> Handle:
        """Join (or open) the connection ``key`` for ``channels`` (channel -> symbols).

        ``key`` identifies the socket: (source, key fingerprint, feed). The factory is called only
        when no connection with that key exists. The handle gets the current status at once.
        ``on_bars`` / ``on_quotes`` take a frame's items at once (else ``on_bar`` / ``on_quote``
        is called per item).
        """
        handle = Handle(
            key,
            {ch: frozenset(s) for ch, s in channels.items()},
            on_bar,
            on_quote,
            on_status,
            on_event,
            on_connected,
            on_bars=on_bars,
            on_quotes=on_quotes,
        )
        with self._lock:
            shared = self._shared.get(key)
            fresh = shared is None
            if shared is None:
                holder: dict[str, _Shared] = {}
                conn = factory(
                    Sink(holder),
                    lambda st: _status(holder["s"], st),
                    lambda: _connected(holder["s"]),
                )
                shared = holder["s"] = self._shared[key] = _Shared(conn)
            shared.handles.append(handle)
            self._reroute(shared)
            for ch, symbols in handle.channels.items():
                shared.conn.subscribe(ch, symbols)
            if fresh:
                shared.conn.start()
        if on_status is not None:
            on_status(shared.conn.status)
        return handle

    def unsubscribe(self, handle: Handle) -> None:
        """Leave; symbols nobody else wants are unsubscribed, the last one out closes the socket."""
        with self._lock:
            shared = self._shared.get(handle.key)
            if shared is None or handle not in shared.handles:
                return
            handle.active = False
            shared.handles.remove(handle)
            self._reroute(shared)
            if not shared.handles:
                del self._shared[handle.key]
                conn = shared.conn
            else:
                for ch, symbols in handle.channels.items():
                    still = set(shared.routes.get(ch, {}))
                    shared.conn.unsubscribe(ch, set(symbols) - still)
                return
        conn.close()

    def connection(self, key: tuple[str, ...]) -> Connection | None:
        """The open connection for ``key`` (None when nobody subscribes)."""
        with self._lock:
            shared = self._shared.get(key)
            return None if shared is None else shared.conn

    def consumers(self, key: tuple[str, ...]) -> int:
        """How many handles share the connection ``key``."""
        with self._lock:
            shared = self._shared.get(key)
            return 0 if shared is None else len(shared.handles)

    def close_all(self) -> None:
        """Close every connection (tests, process exit)."""
        with self._lock:
            shared, self._shared = list(self._shared.values()), {}
        for s in shared:
            for h in s.handles:
                h.active = False
            s.conn.close()

    @staticmethod
    def _reroute(shared: _Shared) -> None:
        routes: dict[str, dict[str, list[Handle]]] = {}
        for h in shared.handles:
            for ch, symbols in h.channels.items():
                for s in symbols:
                    routes.setdefault(ch, {}).setdefault(s, []).append(h)
        merged: dict[str, dict[str, tuple[Handle, ...]]] = {}
        for ch, by_symbol in routes.items():
            star = by_symbol.get("*", [])
            merged[ch] = {s: tuple(dict.fromkeys(hs + star)) for s, hs in by_symbol.items()}
        uniform = {}
        for ch, by in merged.items():
            targets = set(by.values())
            if len(targets) == 1:
                uniform[ch] = targets.pop()
        shared.routes, shared.uniform = merged, uniform


def _route(shared: _Shared, channel: str, item: Any) -> None:
    by_symbol = shared.routes.get(channel)
    if not by_symbol:
        return
    if type(item) is MinuteBar:
        targets = by_symbol.get(item.symbol) or by_symbol.get("*", ())
        for h in targets:
            if h.on_bar is not None:
                _call(h.on_bar, item, channel)
    elif type(item) is OptionQuote:
        targets = by_symbol.get(item.symbol) or by_symbol.get("*", ())
        for h in targets:
            if h.on_quote is not None:
                _call(h.on_quote, item, channel)
    else:
        targets = by_symbol.get(item.get("S", "")) or by_symbol.get("*", ())
        for h in targets:
            if h.on_event is not None:
                try:
                    h.on_event(channel, item)
                except Exception:
                    log.exception("stream consumer failed on a %s frame", channel)


def _route_many(shared: _Shared, channel: str, items: list[Any]) -> None:
    """Route one frame's items (one channel, one type): per frame, not per message."""
    by_symbol = shared.routes.get(channel)
    if not by_symbol or not items:
        return
    first = type(items[0])
    names = [str(i.get("S", "")) for i in items] if first is dict else [i[0] for i in items]
    uniform = shared.uniform.get(channel)
    groups: list[tuple[tuple[Handle, ...], list[Any]]]
    if uniform is not None:  # every symbol goes to the same consumers: filter, don't group
        if "*" in by_symbol:
            groups = [(uniform, items)]
        else:
            wanted = [i for i, s in zip(items, names, strict=True) if s in by_symbol]
            groups = [(uniform, wanted)] if wanted else []
    else:
        star = by_symbol.get("*", ())
        per: dict[Handle, list[Any]] = {}
        for item, s in zip(items, names, strict=True):
            for h in by_symbol.get(s) or star:
                per.setdefault(h, []).append(item)
        groups = [((h,), got) for h, got in per.items()]
    for handles, got in groups:
        for h in handles:
            if first is MinuteBar:
                _deliver(h.on_bars, h.on_bar, got, channel)
            elif first is OptionQuote:
                _deliver(h.on_quotes, h.on_quote, got, channel)
            elif h.on_event is not None:
                for item in got:
                    try:
                        h.on_event(channel, item)
                    except Exception:
                        log.exception("stream consumer failed on a %s frame", channel)


def _deliver(
    many: Callable[[list[Any]], None] | None,
    one: Callable[[Any], None] | None,
    items: list[Any],
    channel: str,
) -> None:
    if many is not None:
        _call(many, items, channel)
    elif one is not None:
        for item in items:
            _call(one, item, channel)


def _call(callback: Callable[[Any], None], item: Any, channel: str) -> None:
    try:
        callback(item)
    except Exception:  # one consumer's bug must not starve the others
        log.exception("stream consumer failed on a %s frame", channel)


def _status(shared: _Shared, status: FeedStatus) -> None:
    for h in tuple(shared.handles):
        if h.on_status is not None:
            try:
                h.on_status(status)
            except Exception:
                log.exception("stream consumer failed on a status")


def _connected(shared: _Shared) -> None:
    for h in tuple(shared.handles):
        if h.on_connected is not None:
            try:
                h.on_connected()
            except Exception:
                log.exception("stream consumer failed on connect")


_DEFAULT = StreamHub()


def default_hub() -> StreamHub:
    """The process-wide hub every :class:`~live.market.stream.service.MarketStream` shares."""
    return _DEFAULT
