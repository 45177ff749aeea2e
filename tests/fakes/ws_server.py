"""What the websocket fakes share: a websockets server on 127.0.0.1 in its own event-loop thread.

A subclass names its endpoints (Alpaca feeds, Polygon markets), refuses unknown paths in
``_upgrade``, builds its connection state in ``_accept`` and talks to one client in
``_converse``; the test thread reaches the loop through
``_call``. Per endpoint the base keeps what tests assert on: upgrade times, decoded client
frames, published messages, live connections; and the two transport faults every vendor shares
(``mute``: open but silent; ``drop``: abort without a close frame). ``wait_for`` is the polling
helper the stream tests use to wait for the other threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response


@dataclass(eq=False)
class Conn:
    """One client connection; vendors subclass it with their state."""

    ws: ServerConnection
    endpoint: str
    authed: bool = False

    def wants(self, msg: dict[str, Any]) -> bool:
        """Whether this connection subscribed to ``msg`` (vendors override)."""
        return False


@dataclass
class Endpoint:
    """What happened on one endpoint (a feed, a market)."""

    attempts: list[float] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)
    conns: list[Conn] = field(default_factory=list)
    muted: bool = False
    refusals: list[int] = field(default_factory=list)  # HTTP statuses for the next upgrades


class LoopServer:
    """Start with ``with``; ``port`` is the ephemeral port once entered."""

    kind = "endpoint"  # what the vendor calls an endpoint, for error messages

    def __init__(self, endpoints: Iterable[str]) -> None:
        self._endpoints = {name: Endpoint() for name in endpoints}
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._lock = threading.Lock()
        self.port = 0

    def __enter__(self) -> Self:
        self._thread.start()
        self._server = self._call(self._start())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            for state in self._endpoints.values():  # clients whose loop is gone never answer
                for conn in list(state.conns):  # a close frame: do not wait for them
                    conn.ws.transport.abort()
            self._server.close()
            await self._server.wait_closed()

        self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> Server:
        return await serve(
            self._session, "127.0.0.1", 0, process_request=self._upgrade, close_timeout=1
        )

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the server's loop from the test thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def _upgrade(self, ws: ServerConnection, request: Request) -> Response | None:
        """Accept every upgrade (subclasses refuse some with ``ws.respond(...)``)."""
        return None

    def _accept(self, ws: ServerConnection, request: Request) -> Conn:
        """The vendor's connection state for an accepted upgrade (vendors implement)."""
        raise NotImplementedError

    async def _converse(self, conn: Conn) -> None:
        """Greet, authenticate and serve one connection (vendors implement)."""
        raise NotImplementedError

    async def _session(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        conn = self._accept(ws, ws.request)
        self._opened(conn)
        try:
            await self._converse(conn)
        except ConnectionClosed:
            pass  # the client went away
        finally:
            self._closed(conn)

    async def _send(self, conn: Conn, msgs: list[dict[str, Any]]) -> None:
        """Encode ``msgs`` as one frame for ``conn`` and send it (vendors implement)."""
        raise NotImplementedError

    def _fan_out(
        self,
        name: str,
        messages: list[dict[str, Any]],
        *,
        duplicate: bool = False,
        reverse: bool = False,
        batch: bool = True,
    ) -> int:
        """Send each authenticated connection on ``name`` the ``messages`` it wants.

        One frame per connection (``batch=False``: one per message); ``duplicate`` sends every
        frame twice; ``reverse`` reverses the order. Returns the number of frames sent.
        """
        ordered = list(reversed(messages)) if reverse else list(messages)

        async def send() -> int:
            sent = 0
            for conn in self._audience(name, messages):
                mine = [m for m in ordered if conn.wants(m)]
                frames = [mine] if batch and mine else [[m] for m in mine]
                for frame in [f for f in frames for _ in range(2 if duplicate else 1)]:
                    try:
                        await self._send(conn, frame)
                        sent += 1
                    except ConnectionClosed:  # a closed client misses it, like real life
                        break
            return sent

        return int(self._call(send()))

    def _endpoint(self, name: str) -> Endpoint:
        if name not in self._endpoints:
            known = ", ".join(sorted(self._endpoints))
            raise ValueError(f"unknown {self.kind} {name!r}: use one of {known}")
        return self._endpoints[name]

    # -- bookkeeping (loop thread) -------------------------------------------------------------
    def _attempt(self, ws: ServerConnection, name: str) -> Response | None:
        """Record an upgrade on ``name``; refuse it if ``refuse`` queued a status."""
        with self._lock:
            state = self._endpoints[name]
            state.attempts.append(time.monotonic())
            refused = state.refusals.pop(0) if state.refusals else None
        return None if refused is None else ws.respond(refused, "refused by the fake\n")

    def _opened(self, conn: Conn) -> None:
        with self._lock:
            self._endpoints[conn.endpoint].conns.append(conn)

    def _closed(self, conn: Conn) -> None:
        with self._lock:
            self._endpoints[conn.endpoint].conns.remove(conn)

    def _log(self, conn: Conn, msg: dict[str, Any]) -> None:
        with self._lock:
            self._endpoints[conn.endpoint].received.append(msg)

    def _others(self, conn: Conn) -> list[Conn]:
        """The other authenticated connections on ``conn``'s endpoint."""
        with self._lock:
            return [c for c in self._endpoints[conn.endpoint].conns if c.authed and c is not conn]

    def _audience(self, name: str, published: list[dict[str, Any]]) -> list[Conn]:
        """Record ``published`` and return the connections that may get it (none when muted)."""
        with self._lock:
            state = self._endpoint(name)
            state.published.extend(published)
            return [] if state.muted else [c for c in state.conns if c.authed]

    # -- inspection and faults (test thread) ---------------------------------------------------
    def connection_attempts(self, name: str) -> list[float]:
        """``time.monotonic()`` of every websocket upgrade on ``name``."""
        with self._lock:
            return list(self._endpoint(name).attempts)

    def connections(self, name: str) -> int:
        """Currently authenticated connections on ``name``."""
        with self._lock:
            return sum(c.authed for c in self._endpoint(name).conns)

    def received(self, name: str) -> list[dict[str, Any]]:
        """Every decoded client frame on ``name`` (secrets redacted by the vendor fake)."""
        with self._lock:
            return [dict(m) for m in self._endpoint(name).received]

    def published(self, name: str) -> list[dict[str, Any]]:
        """Every message given to ``publish`` on ``name`` (delivered or not)."""
        with self._lock:
            return list(self._endpoint(name).published)

    def mute(self, name: str, on: bool = True) -> None:
        """Keep ``name``'s sockets open (pings answered, control frames sent), withhold data."""
        with self._lock:
            self._endpoint(name).muted = on

    def refuse(self, name: str, count: int = 1, status: int = 503) -> None:
        """Answer the next ``count`` upgrades on ``name`` with HTTP ``status`` (no websocket)."""
        with self._lock:
            self._endpoint(name).refusals.extend([status] * count)

    def drop(self, name: str) -> None:
        """Abort every connection on ``name`` without a close frame (a mid-stream drop)."""

        async def drop() -> None:
            conns = list(self._endpoints[name].conns)
            for conn in conns:
                conn.authed = False  # gone for connections()/subscriptions() from now on
                conn.ws.transport.abort()
            await asyncio.gather(*(c.ws.wait_closed() for c in conns))

        self._endpoint(name)
        self._call(drop())


def wait_for(pred: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``pred`` every 10 ms until truthy and return it; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")
