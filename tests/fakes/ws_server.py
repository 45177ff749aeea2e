"""What the websocket fakes share: a websockets server on 127.0.0.1 in its own event-loop thread.

A subclass implements ``_session`` (one connection) and may override ``_upgrade`` (the HTTP
upgrade, e.g. to refuse unknown paths); the test thread reaches the loop through ``_call``.
``wait_for`` is the polling helper the stream tests use to wait for the other threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response


class LoopServer:
    """Start with ``with``; ``port`` is the ephemeral port once entered."""

    def __init__(self) -> None:
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
            self._server.close()
            await self._server.wait_closed()

        self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> Server:
        return await serve(self._session, "127.0.0.1", 0, process_request=self._upgrade)

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the server's loop from the test thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def _upgrade(self, ws: ServerConnection, request: Request) -> Response | None:
        """Accept every upgrade (subclasses refuse some with ``ws.respond(...)``)."""
        return None

    async def _session(self, ws: ServerConnection) -> None:
        raise NotImplementedError


def wait_for(pred: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``pred`` every 10 ms until truthy and return it; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")
