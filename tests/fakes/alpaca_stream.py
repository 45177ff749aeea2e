"""A local fake of Alpaca's trade-update stream (``wss://paper-api.alpaca.markets/stream``).

A websockets server on 127.0.0.1 (ephemeral port, its own event-loop thread) speaking the
documented protocol: ``{"action": "authenticate", "data": {"key_id", "secret_key"}}`` answered
by ``{"stream": "authorization", "data": {"status": "authorized" | "unauthorized", ...}}``, then
``{"action": "listen", "data": {"streams": ["trade_updates"]}}`` answered by
``{"stream": "listening", ...}``, then ``{"stream": "trade_updates", "data": {"event", "order",
"timestamp", "execution_id", "price", "qty", "position_qty"}}`` for every order change.

Attach it to a :class:`~tests.fakes.alpaca_broker.FakeAlpacaBroker` with :meth:`attach` and every
order the fake creates, fills, cancels or replaces is published. Knobs: ``duplicate`` (every
event twice), :meth:`publish_raw` (anything, e.g. malformed JSON), :meth:`drop_connections`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from tests.fakes.alpaca_broker import FakeAlpacaBroker


class FakeTradeStream:
    """The fake stream server (``with FakeTradeStream(key, secret) as s: s.url``)."""

    def __init__(self, api_key: str, secret_key: str) -> None:
        self.keys = (api_key, secret_key)
        self.duplicate = False
        self.auth_attempts = 0
        self.sent: list[dict[str, Any]] = []
        self._clients: set[ServerConnection] = set()
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> FakeTradeStream:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> Server:
        return await serve(self._session, "127.0.0.1", 0)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream"

    @property
    def listeners(self) -> int:
        """Connections that authenticated and listen to trade_updates."""
        return len(self._clients)

    # -- protocol ------------------------------------------------------------------------------
    async def _session(self, ws: ServerConnection) -> None:
        try:
            auth = json.loads(await ws.recv())
            self.auth_attempts += 1
            data = auth.get("data") or {}
            ok = (
                auth.get("action") in ("authenticate", "auth")
                and (data.get("key_id"), data.get("secret_key")) == self.keys
            )
            status = "authorized" if ok else "unauthorized"
            await ws.send(
                json.dumps(
                    {
                        "stream": "authorization",
                        "data": {"status": status, "action": "authenticate"},
                    }
                )
            )
            if not ok:
                await ws.close(1008, "unauthorized")
                return
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("action") == "listen":
                    streams = (msg.get("data") or {}).get("streams") or []
                    await ws.send(json.dumps({"stream": "listening", "data": {"streams": streams}}))
                    if "trade_updates" in streams:
                        self._clients.add(ws)
        except Exception:  # noqa: BLE001 - a client going away ends its session
            pass
        finally:
            self._clients.discard(ws)

    # -- publishing ----------------------------------------------------------------------------
    def attach(self, fake: FakeAlpacaBroker) -> None:
        """Publish every order change of ``fake``."""
        fake.listeners.append(self.publish)

    def publish(
        self, event: str, order: dict[str, Any], fill: dict[str, Any] | None = None
    ) -> None:
        """Send a trade update for ``order`` (a wire order of the fake) to every listener."""
        data: dict[str, Any] = {
            "event": event,
            "order": copy.deepcopy(order),
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        if fill is not None:
            data.update(execution_id=str(uuid.uuid4()), **fill)
        msg = {"stream": "trade_updates", "data": data}
        self.sent.append(msg)
        for _ in range(2 if self.duplicate else 1):
            self.publish_raw(json.dumps(msg))

    def publish_raw(self, text: str) -> None:
        """Send ``text`` as is to every listener."""

        async def send() -> None:
            for ws in list(self._clients):
                try:
                    await ws.send(text)
                except Exception:  # noqa: BLE001 - a closed client misses it, like real life
                    self._clients.discard(ws)

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)

    def drop_connections(self) -> None:
        """Close every client connection (the client should reconnect)."""

        async def drop() -> None:
            for ws in list(self._clients):
                await ws.close(1011, "dropped by the fake")
            self._clients.clear()

        asyncio.run_coroutine_threadsafe(drop(), self._loop).result(10)
