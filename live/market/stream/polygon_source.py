"""Polygon's (Massive's) websocket through polygon-api-client 1.16: the second stream source.

:class:`PolygonConnection` runs ``WebSocketClient`` (``raw=True``: the status frames the client
would drop reach us) in a daemon thread with its own event loop, and hands the hub the same
parsed items as the Alpaca source: stocks' ``AM.<sym>`` minute aggregates as
:class:`MinuteBar` (the aggregate's start ``s`` is the bar's time; Polygon re-broadcasts a minute
when a late trade changes it, and the book treats a changed repeat as a revision), options'
``Q.O:<occ>`` quotes as :class:`OptionQuote` (OCC symbol without the ``O:`` prefix).

Health: ``auth_failed`` is raised by the client out of ``connect()`` and is final (AUTH_FAILED,
not retried); ``max_connections`` means a newer connection on the same key closed this one
(Polygon evicts the *older* socket), so the feed stops as EVICTED instead of evicting the other
process back in a loop. ``POLYGON_API_KEY`` holds the key; ``POLYGON_STREAM_URL`` (ws:// or
wss://host[:port]) overrides ``wss://socket.polygon.io``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from polygon.exceptions import AuthError
from polygon.websocket import WebSocketClient

from live.errors import ConfigError
from live.market.stream.hub import WIRE_LOG, ConnectionStats, now_utc, spawn
from live.market.stream.model import FeedState, FeedStatus, OptionQuote, minute_bar

log = logging.getLogger("live.market.stream")

DEFAULT_URL = "wss://socket.polygon.io"
TOPICS = {("stocks", "bars"): "AM", ("options", "quotes"): "Q"}


@dataclass(frozen=True)
class PolygonStreamConfig:
    """The key (excluded from ``repr``) and the host."""

    api_key: str = field(repr=False)
    host: str = "socket.polygon.io"
    secure: bool = True


def polygon_config_from_env(env: Mapping[str, str] | None = None) -> PolygonStreamConfig:
    """``POLYGON_API_KEY`` and ``POLYGON_STREAM_URL`` (see the module docstring)."""
    env = os.environ if env is None else env
    key = env.get("POLYGON_API_KEY", "")
    if not key:
        raise ConfigError("set POLYGON_API_KEY to stream from Polygon")
    url = (env.get("POLYGON_STREAM_URL") or DEFAULT_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc or parts.path not in ("", "/"):
        raise ConfigError(
            f"POLYGON_STREAM_URL={url!r} is not a websocket host; use wss://socket.polygon.io "
            "(or ws://127.0.0.1:PORT for a local fake)"
        )
    return PolygonStreamConfig(key, parts.netloc, parts.scheme == "wss")


def _ms(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def parse_event(market: str, event: Mapping[str, Any]) -> tuple[str, Any] | None:
    """(channel, item) for an ``AM`` or options ``Q`` event; None for anything else."""
    ev = event.get("ev")
    if ev == "AM" and market == "stocks":
        return "bars", minute_bar(str(event["sym"]), _ms(event["s"]), event)
    if ev == "Q" and market == "options":
        return "quotes", OptionQuote(
            symbol=str(event["sym"]).removeprefix("O:"),
            ts=_ms(event["t"]),
            bid=float(event["bp"]),
            ask=float(event["ap"]),
            bid_size=float(event.get("bs") or 0.0),
            ask_size=float(event.get("as") or 0.0),
            bid_exchange=str(event.get("bx", "")),
            ask_exchange=str(event.get("ax", "")),
        )
    return None


class PolygonConnection:
    """One ``WebSocketClient`` (one key, one market) in a daemon thread.

    Args:
        config: Key and host.
        market: ``"stocks"`` (AM minute aggregates) or ``"options"`` (Q quotes).
        sink, on_status, on_connected: As for :class:`~.alpaca_source.AlpacaConnection`.
    """

    def __init__(
        self,
        config: PolygonStreamConfig,
        market: str,
        sink: Callable[[str, Any], None],
        on_status: Callable[[FeedStatus], None],
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        if market not in ("stocks", "options"):
            raise ConfigError(f"polygon market {market!r}: use 'stocks' or 'options'")
        self.market = market
        self.name = f"polygon:{market}"
        self.stats = ConnectionStats()
        self.status = FeedStatus(self.name, FeedState.CONNECTING, "not started", now_utc())
        self._sink, self._on_status, self._on_connected = sink, on_status, on_connected
        self.client = WebSocketClient(
            api_key=config.api_key,
            feed=config.host,
            market=market,
            raw=True,
            secure=config.secure,
            max_reconnects=None,
        )
        self._topics: dict[str, set[str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._ws: object | None = None
        self._task: asyncio.Task[None] | None = None

    def _topic(self, channel: str, symbol: str) -> str:
        prefix = TOPICS.get((self.market, channel))
        if prefix is None:
            raise ConfigError(f"{self.name} has no channel {channel!r}")
        return f"{prefix}.O:{symbol}" if self.market == "options" else f"{prefix}.{symbol}"

    def subscribe(self, channel: str, symbols: Iterable[str]) -> None:
        """Add ``symbols`` (the client reconciles its topic set within a second)."""
        topics = [self._topic(channel, s) for s in symbols]
        self._topics.setdefault(channel, set()).update(symbols)
        self.client.subscribe(*topics)

    def unsubscribe(self, channel: str, symbols: Iterable[str]) -> None:
        """Remove ``symbols``."""
        gone = set(symbols)
        self._topics.setdefault(channel, set()).difference_update(gone)
        self.client.unsubscribe(*(self._topic(channel, s) for s in gone))

    def symbols(self) -> dict[str, set[str]]:
        """The channel -> symbols set asked of the vendor."""
        return {ch: set(s) for ch, s in self._topics.items() if s}

    def start(self) -> PolygonConnection:
        """Connect in the background (returns at once)."""
        self._thread = self._thread or spawn(self._run, self.name)
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except AuthError:
            self._set(FeedState.AUTH_FAILED, f"{self.name}: auth failed: check POLYGON_API_KEY")
        except Exception as exc:  # noqa: BLE001 - a dead thread must show as a state
            if not self._stopping:
                self._set(FeedState.STOPPED, f"{self.name}: stream ended ({type(exc).__name__})")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.stats.attempts += 1
        self._set(FeedState.CONNECTING, f"{self.name}: connecting")
        self._task = asyncio.create_task(self.client.connect(self._process, logger=WIRE_LOG))
        try:
            await self._task
        except asyncio.CancelledError:
            pass  # close() or an eviction: the client must not reconnect
        finally:
            if self.client.websocket is not None:
                await self.client.close()
        if self.status.state not in (FeedState.EVICTED, FeedState.AUTH_FAILED):
            self._set(FeedState.STOPPED, f"{self.name} closed")

    async def _process(self, raw: str | bytes) -> None:
        if self._stopping:  # evicted or closing: nothing more counts (and the state stays put)
            return
        ws = self.client.websocket
        if ws is not None and ws is not self._ws:  # the client (re)connected: a new socket
            self._ws = ws
            self._streaming()
        try:
            events = json.loads(raw)
        except ValueError:
            self.stats.malformed += 1
            return
        for event in events if isinstance(events, list) else [events]:
            if not isinstance(event, dict):
                continue
            if event.get("ev") == "status":
                await self._on_status_event(event)
                continue
            try:
                parsed = parse_event(self.market, event)
            except (KeyError, TypeError, ValueError):
                self.stats.malformed += 1
                continue
            if parsed is None:
                continue
            self.stats.messages += 1
            self.stats.last_message_s = time.time()
            try:
                self._sink(*parsed)
            except Exception:
                log.exception("%s: frame handler failed", self.name)

    async def _on_status_event(self, event: Mapping[str, Any]) -> None:
        state = event.get("status")
        if state == "max_connections":
            self._stopping = True
            # if the close lands before the cancel below, the client must not reconnect either
            self.client.max_reconnects = 0
            self._set(
                FeedState.EVICTED,
                f"{self.name}: evicted by a newer connection on this key (max_connections); "
                "stopped so the two do not evict each other: run one streaming process per key",
            )
            if self._task is not None:
                self._task.cancel()  # the client would reconnect (and evict the other) otherwise

    def _streaming(self) -> None:
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        self._set(FeedState.STREAMING, f"{self.name}: connected")
        if self._on_connected is not None:
            self._on_connected()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the client and wait for its thread (best effort)."""
        self._stopping = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None and loop.is_running():
            loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(timeout)
        if self.status.state not in (FeedState.EVICTED, FeedState.AUTH_FAILED):
            self._set(FeedState.STOPPED, f"{self.name} closed")

    def _set(self, state: FeedState, message: str) -> None:
        self.status = FeedStatus(self.name, state, message, now_utc())
        log.log(logging.INFO if state == FeedState.STREAMING else logging.WARNING, "%s", message)
        try:
            self._on_status(self.status)
        except Exception:
            log.exception("%s: status handler failed", self.name)
