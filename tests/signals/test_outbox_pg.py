"""The outbox on Postgres: two dispatchers (two engines, as two processes would have) drain one
outbox concurrently and every row is sent exactly once (``FOR UPDATE SKIP LOCKED`` claims); a
row left in flight by a dead dispatcher is probed by another once its lease has run out."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from signals import outbox as ob
from signals.db import make_engine, outbox
from signals.dispatcher import Dispatcher
from signals.fanout import fan_out
from tests.signals.outbox_fixtures import (
    T0,
    FakeClock,
    MemorySender,
    add_plan,
    add_subscribers,
    event,
    realtime_plan,
)


class SlowSender(MemorySender):
    async def send(self, msg):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.001)  # let the other dispatcher interleave
        return await super().send(msg)


def test_two_dispatchers_never_double_send(tmp_path: Path, postgres_url: str) -> None:
    env = {"ALPACA_IMPROVED_DATABASE_URL": postgres_url}
    first = make_engine(tmp_path, environ=env)
    add_plan(first, realtime_plan())
    add_subscribers(first, "rt", 150)
    with first.begin() as conn:
        fan_out(conn, [event(1), event(2)], T0)  # 302 rows
    second = make_engine(tmp_path, environ=env)
    clock = FakeClock()
    a, b = SlowSender(clock), SlowSender(clock)
    sent_a = Dispatcher(first, [a], clock=clock, worker_id="a", batch=16, poll=0.01)
    sent_b = Dispatcher(second, [b], clock=clock, worker_id="b", batch=16, poll=0.01)

    async def both() -> None:
        await asyncio.gather(sent_a.run_until_idle(), sent_b.run_until_idle())

    asyncio.run(both())
    keys_a, keys_b = set(a.counts()), set(b.counts())
    assert len(a.sent) == len(keys_a) and len(b.sent) == len(keys_b)
    assert not keys_a & keys_b and len(keys_a | keys_b) == 302
    assert keys_a and keys_b  # both took part
    with first.connect() as conn:
        got = {r.idem_key: r for r in conn.execute(sa.select(outbox))}
    assert {r.status for r in got.values()} == {"sent"}
    assert {k for k, r in got.items() if r.claimed_by == "a"} == keys_a


def test_lease_expired_inflight_row_is_probed_by_another(tmp_path: Path, postgres_url: str) -> None:
    env = {"ALPACA_IMPROVED_DATABASE_URL": postgres_url}
    engine = make_engine(tmp_path, environ=env)
    add_plan(engine, realtime_plan(dm=False))
    with engine.begin() as conn:
        fan_out(conn, [event(1)], T0)
        (row,) = ob.claim(conn, T0, "dead", 5)
    clock = FakeClock(T0 + dt.timedelta(seconds=30))
    sender = MemorySender(clock)
    live = Dispatcher(engine, [sender], clock=clock, worker_id="live", lease=60)
    asyncio.run(live.run_until_idle())
    assert sender.probes == [] and sender.sent == []  # within the lease: not ours to touch
    clock.advance(60)
    asyncio.run(live.run_until_idle())
    assert sender.probes == [row.idem_key] and sender.counts() == {row.idem_key: 1}
