"""A local fake of Polygon's (Massive's) websocket stream (``wss://socket.polygon.io/{market}``).

A websockets server on 127.0.0.1 (``LoopServer``: ephemeral port, its own event-loop thread)
speaking what polygon-api-client 1.16.3's ``WebSocketClient`` expects (STREAMS_BOTS_NOTES §2),
JSON text only, every server message an array:
``[{"ev":"status","status":"connected"}]``; ``{"action":"auth","params":KEY}`` answered by
``auth_success`` or ``auth_failed`` (then closed); ``{"action":"subscribe","params":"AM.AAPL,T.*"}``
answered by one ``success`` status per topic ("subscribed to: AM.AAPL"), ``unsubscribe`` likewise;
events ``T``, ``Q``, ``A``, ``AM`` (and ``LULD``, ``FMV``, ``NOI``) with ``sym`` and epoch-ms
times. Point the real client at it with
``WebSocketClient(api_key=KEY, feed=fake.feed_host, market="stocks", secure=False)``.

The connection limit works opposite to Alpaca's: when a newer connection on the same key and
market authenticates, the OLDER one gets ``max_connections`` and is closed (code
``evict_close_code``, 1008 by default, which the client treats as an error and reconnects,
so two processes on one key evict each other in a loop [inference, notes §2]).

Choices where the vendor's behaviour is not documented [inference]: an action before auth gets
``{"status":"error","message":"not authorized"}``; no auth within ``auth_timeout`` s gets
``auth_timeout`` and a close; an unparsable frame gets ``{"status":"error","message":"invalid
syntax"}``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from tests.fakes.alpaca_data_stream import minute_ns
from tests.fakes.market import Bar, FakeMarket
from tests.fakes.ws_server import Conn, LoopServer

MARKETS = ("stocks", "options", "indices", "crypto", "forex")
EVENTS = {
    "stocks": {"T", "Q", "A", "AM", "LULD", "FMV", "NOI"},
    "options": {"T", "Q", "A", "AM", "FMV"},
    "indices": {"A", "AM", "V"},
    "crypto": {"XT", "XQ", "XA", "XAS", "AM", "FMV"},
    "forex": {"C", "CA", "CAS", "FMV"},
}
MAX_CONNECTIONS = (
    "Maximum number of websocket connections exceeded. You have been disconnected from the "
    "older session; close other connections or upgrade your plan."
)


def status(state: str, message: str) -> dict[str, str]:
    return {"ev": "status", "status": state, "message": message}


def wire_agg(symbol: str, bar: Bar, day: list[Bar]) -> dict[str, Any]:
    """A FakeMarket minute bar as Polygon's ``AM`` event; ``day`` is the session's bars so far."""
    start = bar.ts_ns // 1_000_000
    upto = [b for b in day if b.ts_ns <= bar.ts_ns]
    volume = sum(b.v for b in upto)
    return {
        "ev": "AM",
        "sym": symbol,
        "v": int(bar.v),
        "av": int(volume),
        "op": day[0].o,
        "vw": bar.vw,
        "o": bar.o,
        "c": bar.c,
        "h": bar.h,
        "l": bar.l,
        "a": round(sum(b.vw * b.v for b in upto) / volume, 4) if volume else bar.vw,
        "z": int(bar.v // bar.n) if bar.n else 0,
        "s": start,
        "e": start + 60_000,
        "otc": False,
    }


@dataclass(eq=False)
class _Conn(Conn):
    key: str = ""
    topics: list[str] = field(default_factory=list)

    def wants(self, event: dict[str, Any]) -> bool:
        ev, sym = event.get("ev"), event.get("sym", event.get("pair"))
        return f"{ev}.{sym}" in self.topics or f"{ev}.*" in self.topics


class FakePolygonStream(LoopServer):
    """The fake server; ``feed_host`` is what ``WebSocketClient(feed=...)`` takes.

    Args:
        api_key: The only key that authenticates.
        market: Source of ``play`` aggregates (default ``FakeMarket()``).
        auth_timeout: Seconds a connection may stay unauthenticated.
        evict_close_code: Close code the evicted older connection gets (1000 makes the
            polygon client's ``connect`` return quietly instead of reconnecting).
    """

    kind = "market"

    def __init__(
        self,
        api_key: str = "k",
        *,
        market: FakeMarket | None = None,
        auth_timeout: float = 10.0,
        evict_close_code: int = 1008,
    ) -> None:
        self.api_key = api_key
        self.market = market or FakeMarket()
        self.auth_timeout = auth_timeout
        self.evict_close_code = evict_close_code
        super().__init__(MARKETS)

    @property
    def feed_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT`` (append ``/stocks``, ``/options``, ...)."""
        return f"ws://{self.feed_host}"

    def subscriptions(self, market: str) -> list[str]:
        """The topics of the newest authenticated connection on ``market``; [] if none."""
        with self._lock:
            conns = [c for c in self._endpoint(market).conns if isinstance(c, _Conn) and c.authed]
            return list(conns[-1].topics) if conns else []

    # -- protocol (loop thread) ----------------------------------------------------------------
    def _upgrade(self, ws: ServerConnection, request: Request) -> Response | None:
        market = request.path.split("?")[0].strip("/")
        if market not in MARKETS:
            return ws.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        return self._attempt(ws, market)

    def _accept(self, ws: ServerConnection, request: Request) -> Conn:
        return _Conn(ws, request.path.split("?")[0].strip("/"))

    async def _converse(self, conn: Conn) -> None:
        assert isinstance(conn, _Conn)
        await self._send(conn, [status("connected", "Connected Successfully")])
        await self._serve(conn)

    async def _serve(self, conn: _Conn) -> None:
        deadline = self._loop.time() + self.auth_timeout
        while True:
            try:
                wait = None if conn.authed else deadline - self._loop.time()
                raw = await asyncio.wait_for(conn.ws.recv(), wait)
            except TimeoutError:
                await self._send(conn, [status("auth_timeout", "no authentication in time")])
                await conn.ws.close(1008, "auth timeout")
                return
            try:
                msg = json.loads(raw)
                action, params = msg["action"], str(msg.get("params", ""))
            except (ValueError, TypeError, KeyError):
                await self._send(conn, [status("error", "invalid syntax")])
                continue
            self._log(conn, {**msg, "params": "REDACTED"} if action == "auth" else msg)
            if action == "auth":
                if not await self._authenticate(conn, params):
                    return
            elif not conn.authed:
                await self._send(conn, [status("error", "not authorized")])
            elif action in ("subscribe", "unsubscribe"):
                await self._subscribe(conn, params, action == "subscribe")
            else:
                await self._send(conn, [status("error", f"unknown action {action!r}")])

    async def _authenticate(self, conn: _Conn, key: str) -> bool:
        if key != self.api_key:
            await self._send(conn, [status("auth_failed", "authentication failed")])
            await conn.ws.close(1008, "authentication failed")
            return False
        conn.authed, conn.key = True, key
        await self._send(conn, [status("auth_success", "authenticated")])
        for old in self._others(conn):  # the newcomer wins: evict the older sessions
            assert isinstance(old, _Conn)
            if old.key == key:
                old.authed = False
                await self._send(old, [status("max_connections", MAX_CONNECTIONS)])
                await old.ws.close(self.evict_close_code, "max_connections")
        return True

    async def _subscribe(self, conn: _Conn, params: str, add: bool) -> None:
        topics = [t.strip() for t in params.split(",") if t.strip()]
        answers = []
        for topic in topics:
            ev, _, sym = topic.partition(".")
            if not sym or ev not in EVENTS[conn.endpoint]:
                answers.append(status("error", f"invalid subscription: {topic}"))
                continue
            with self._lock:
                if add and topic not in conn.topics:
                    conn.topics.append(topic)
                elif not add and topic in conn.topics:
                    conn.topics.remove(topic)
            verb = "subscribed to" if add else "unsubscribed to"
            answers.append(status("success", f"{verb}: {topic}"))
        if answers:
            await self._send(conn, answers)

    async def _send(self, conn: Conn, msgs: list[dict[str, Any]]) -> None:
        await conn.ws.send(json.dumps(msgs))

    # -- publishing (test thread) --------------------------------------------------------------
    def publish(
        self,
        market: str,
        events: list[dict[str, Any]],
        *,
        duplicate: bool = False,
        reverse: bool = False,
        batch: bool = True,
    ) -> int:
        """Send ``events`` to subscribers of each ``ev.sym`` (or ``ev.*``), one frame a connection.

        ``batch=False``: one frame per event; ``duplicate`` sends each frame twice; ``reverse``
        reverses the order. Returns the number of frames sent.
        """
        self._endpoint(market)  # unknown markets fail with the list of known ones
        allowed = EVENTS[market]
        for e in events:
            if e.get("ev") not in allowed or not ("sym" in e or "pair" in e):
                raise ValueError(
                    f"publish({market!r}): event {e!r} needs ev in {sorted(allowed)} and sym"
                )
        json.dumps(events)  # non-JSON values (datetimes) fail here, in the caller's thread

        return self._fan_out(market, events, duplicate=duplicate, reverse=reverse, batch=batch)

    def play(
        self,
        market: str,
        session: dt.date,
        first_minute: int,
        last_minute: int,
        *,
        symbols: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Publish ``AM`` aggregates of FakeMarket's minutes [first, last) after the open.

        One frame a minute; o/h/l/c/v/vw equal the Alpaca fake's bars for the same minute.
        ``symbols`` defaults to the ``AM.<sym>`` subscriptions on ``market``.
        """
        if market != "stocks":
            raise ValueError(f"play({market!r}): minute aggregates are played on stocks only")
        names = sorted(symbols) if symbols is not None else self._am_symbols()
        days = {s: self.market.minute_bars(s, session) for s in names}
        out: list[dict[str, Any]] = []
        for minute in range(first_minute, last_minute):
            ns = minute_ns(session, minute)
            events = [wire_agg(s, b, days[s]) for s in names for b in days[s] if b.ts_ns == ns]
            if events:
                self.publish(market, events)
                out.extend(events)
        return out

    def _am_symbols(self) -> list[str]:
        with self._lock:
            conns = [c for c in self._endpoints["stocks"].conns if isinstance(c, _Conn)]
            named = sorted({t[3:] for c in conns for t in c.topics if t.startswith("AM.")} - {"*"})
        if not named:
            raise ValueError("play('stocks'): nobody subscribed AM.<symbol>; pass symbols=")
        return named

    def send_status(
        self, market: str, state: str, message: str, *, close: int | None = None
    ) -> None:
        """Send a status frame to every authenticated connection; ``close``: then close with it."""

        async def send() -> None:
            for conn in [c for c in self._endpoints[market].conns if c.authed]:
                await self._send(conn, [status(state, message)])
                if close is not None:
                    await conn.ws.close(close, state)

        self._endpoint(market)
        self._call(send())
