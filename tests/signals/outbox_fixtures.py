"""Test helpers for the outbox and the dispatcher: a simulated clock, two small senders and data.

- :class:`FakeClock`: time only moves forward; ``sleep`` jumps to the sleeper's wake time.
- :class:`MemorySender`: an in-process :class:`~signals.interfaces.Sender` that records every
  send with the clock's time and can be told to fail (429 with ``retry_after``, blocked,
  migrated, permanent, transient-but-delivered).
- :class:`SinkServer` + :class:`HttpSender`: a message sink on 127.0.0.1 (starlette under
  uvicorn in a thread) and a real-HTTP sender for it (httpx), with a probe that asks the sink
  whether a message with the row's key arrived: the dispatcher crash tests run the dispatcher
  in a subprocess against them. The sink can answer 429 with ``retry_after`` for a while.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from signals.db import plans, subscribers, subscriptions
from signals.entitlements import plan_to_json
from signals.interfaces import Delivered, DeliveryError, Lane, OutboundMessage
from signals.model import Channel, EventKind, Lineage, Plan, SignalEvent, TargetKind, Tier

T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)  # a Monday, 10:00 New York


class FakeClock:
    """A simulated UTC clock for the dispatcher (no real waiting)."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.t = start

    def now(self) -> dt.datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += dt.timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        target = self.t + dt.timedelta(seconds=max(0.0, seconds))
        await asyncio.sleep(0)
        self.t = max(self.t, target)


@dataclass
class MemorySender:
    """Records sends; ``fail`` maps an idem_key to a list of errors raised on its next sends."""

    clock: Any
    channel: Channel = Channel.TELEGRAM
    rate: int = 1000
    sent: list[tuple[str, str, dt.datetime]] = field(default_factory=list)  # (key, target, at)
    fail: dict[str, list[DeliveryError]] = field(default_factory=dict)
    delivered_anyway: set[str] = field(default_factory=set)  # transient errors that got through
    probes: list[str] = field(default_factory=list)
    next_id: int = 1000

    def lanes(self, msg: OutboundMessage) -> tuple[Lane, ...]:
        return (Lane("mem:all", self.rate, 1.0), Lane(f"mem:{msg.target}", self.rate, 1.0))

    def _book(self, msg: OutboundMessage) -> str:
        self.next_id += 1
        self.sent.append((msg.idem_key, msg.target, self.clock.now()))
        return str(self.next_id)

    async def send(self, msg: OutboundMessage) -> Delivered:
        queue = self.fail.get(msg.idem_key)
        if queue:
            err = queue.pop(0)
            if msg.idem_key in self.delivered_anyway:
                self._book(msg)
            raise err
        return Delivered(self._book(msg))

    async def probe(self, msg: OutboundMessage, last_message_id: str | None) -> Delivered | None:
        self.probes.append(msg.idem_key)
        hits = [k for k, _, _ in self.sent if k == msg.idem_key]
        return Delivered(f"probe-{msg.idem_key[:8]}") if hits else None

    def counts(self) -> Counter[str]:
        return Counter(k for k, _, _ in self.sent)


class SinkServer:
    """A message sink over HTTP: ``POST /send`` stores a message (by its key), ``GET /find``
    answers whether one arrived; ``storm(seconds, retry_after)`` makes it answer 429 meanwhile."""

    def __init__(self, delay: float = 0.0) -> None:
        import uvicorn

        self.delay = delay
        self.received: list[dict[str, Any]] = []
        self.refused: list[float] = []
        self._storm_until = 0.0
        self._retry_after = 0.0
        self._lock = threading.Lock()
        app = Starlette(routes=[
            Route("/send", self._send, methods=["POST"]),
            Route("/find", self._find, methods=["GET"]),
        ])  # fmt: skip
        cfg = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(cfg)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="sink")

    def __enter__(self) -> SinkServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("sink server did not start")
            time.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def storm(self, seconds: float, retry_after: float) -> None:
        self._storm_until = time.monotonic() + seconds
        self._retry_after = retry_after

    async def _send(self, request: Request) -> JSONResponse:
        body = await request.json()
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            if time.monotonic() < self._storm_until:
                self.refused.append(time.monotonic())
                return JSONResponse(
                    {"ok": False, "retry_after": self._retry_after}, status_code=429
                )
            self.received.append(body)
            mid = len(self.received)
        return JSONResponse({"ok": True, "message_id": mid})

    async def _find(self, request: Request) -> JSONResponse:
        key = request.query_params["key"]
        with self._lock:
            hits = [i + 1 for i, m in enumerate(self.received) if m["key"] == key]
        return JSONResponse({"message_id": hits[0] if hits else None})

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(m["key"] for m in self.received)


class HttpSender:
    """A real-HTTP :class:`~signals.interfaces.Sender` for :class:`SinkServer`; records when
    each send started and when each 429 came back (the storm test's evidence)."""

    channel = Channel.TELEGRAM

    def __init__(self, url: str, rate: int = 200) -> None:
        self.client = httpx.AsyncClient(base_url=url, timeout=10.0)
        self.rate = rate
        self.starts: list[float] = []
        self.refusals: list[tuple[float, float]] = []  # (monotonic time received, retry_after)

    def lanes(self, msg: OutboundMessage) -> tuple[Lane, ...]:
        return (Lane("sink:all", self.rate, 1.0), Lane(f"sink:{msg.target}", 50, 1.0))

    async def send(self, msg: OutboundMessage) -> Delivered:
        self.starts.append(time.monotonic())
        try:
            r = await self.client.post("/send", json={"key": msg.idem_key, "target": msg.target,
                                                      "text": msg.text})  # fmt: skip
        except httpx.HTTPError as exc:
            raise DeliveryError(f"sink: {exc}") from None
        if r.status_code == 429:
            ra = float(r.json()["retry_after"])
            self.refusals.append((time.monotonic(), ra))
            raise DeliveryError("sink: 429", retry_after=ra)
        r.raise_for_status()
        return Delivered(str(r.json()["message_id"]))

    async def probe(self, msg: OutboundMessage, last_message_id: str | None) -> Delivered | None:
        r = await self.client.get("/find", params={"key": msg.idem_key})
        mid = r.json()["message_id"]
        return None if mid is None else Delivered(str(mid))


def add_plan(engine: Engine, plan: Plan) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(plans).values(plan_id=plan.plan_id, plan_json=plan_to_json(plan)))


def add_subscribers(
    engine: Engine, plan_id: str, n: int, start_chat: int = 10_000, status: str = "active"
) -> list[str]:
    """``n`` subscribers with Telegram chats, each with a subscription to ``plan_id``."""
    ids = [f"sub-{plan_id}-{start_chat + i}" for i in range(n)]
    with engine.begin() as conn:
        conn.execute(sa.insert(subscribers), [
            {"subscriber_id": s, "created_at": T0, "telegram_user_id": start_chat + i,
             "telegram_chat_id": start_chat + i} for i, s in enumerate(ids)
        ])  # fmt: skip
        conn.execute(sa.insert(subscriptions), [
            {"subscription_id": f"subn-{s}", "subscriber_id": s, "plan_id": plan_id,
             "provider": "local", "status": status, "updated_at": T0} for s in ids
        ])  # fmt: skip
    return ids


def event(n: int = 1, ts: dt.datetime = T0, strategy: str = "ma_crossover") -> SignalEvent:
    lin = Lineage("dep-1", "man-1", strategy, "run-abc", (f"cid-{n}",))
    return SignalEvent(f"fill:exec-{n}", EventKind.FILL, ts, lin, f"BUY {n} SPY @ 500",
                       {"symbol": "SPY", "qty": n, "price": 500.0})  # fmt: skip


def realtime_plan(plan_id: str = "rt", chat: int | None = -100, dm: bool = True) -> Plan:
    return Plan(plan_id, "ma_crossover", Tier("realtime"), 1000, telegram_chat_id=chat, dm=dm)


TG_DM = TargetKind.DM
