"""The outbox and the dispatcher's logic on a simulated clock with an in-process sender.

The crash, 429-storm and Postgres tests are in ``test_outbox_crash.py`` / ``test_outbox_pg.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from signals import outbox as ob
from signals.db import chat_state, make_engine, outbox
from signals.dispatcher import Dispatcher
from signals.errors import SignalsError
from signals.fanout import fan_out
from signals.interfaces import DeliveryError
from signals.model import Plan, Tier
from signals.tiers import not_before
from tests.signals.outbox_fixtures import (
    T0,
    FakeClock,
    MemorySender,
    add_plan,
    add_subscribers,
    event,
    realtime_plan,
)


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return make_engine(tmp_path, environ={})


def rows(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(outbox).order_by(outbox.c.id)))


def ingest(engine: sa.Engine, *events: object, now: dt.datetime = T0) -> int:
    with engine.begin() as conn:
        return fan_out(conn, list(events), now)  # type: ignore[arg-type]


def run(d: Dispatcher, settle: float = 0.0) -> None:
    asyncio.run(d.run_until_idle(settle))
    d.close()


def test_fanout_posts_once_per_channel_plus_one_dm_per_entitled(engine: sa.Engine) -> None:
    add_plan(engine, realtime_plan())
    add_subscribers(engine, "rt", 3)
    add_subscribers(engine, "rt", 1, start_chat=20_000, status="canceled")
    assert ingest(engine, event()) == 4  # one channel post + three entitled DMs
    got = rows(engine)
    assert sorted(r.target_kind for r in got) == ["channel", "dm", "dm", "dm"]
    assert {r.target for r in got if r.target_kind == "channel"} == {"-100"}
    assert all(r.not_before == T0.replace(tzinfo=None) and r.status == "pending" for r in got)
    ingest(engine, event())  # a re-read after a crash: the unique keys make it a no-op
    assert len(rows(engine)) == 4


def test_shared_subscriber_gets_one_dm_from_the_earliest_tier(engine: sa.Engine) -> None:
    late = Plan("eod", "*", Tier("eod", end_of_day=True), 500, telegram_chat_id=-200, dm=True)
    add_plan(engine, late)
    add_plan(engine, realtime_plan(chat=None))
    subs = add_subscribers(engine, "rt", 2)
    with engine.begin() as conn:  # the first subscriber also holds the end-of-day plan
        conn.execute(sa.text(
            "INSERT INTO subscriptions(subscription_id, subscriber_id, plan_id, provider, status,"
            " updated_at) VALUES('x', :s, 'eod', 'local', 'active', :t)"), {"s": subs[0], "t": T0}
        )  # fmt: skip
    ingest(engine, event())
    dms = [r for r in rows(engine) if r.target_kind == "dm"]
    assert len(dms) == 2 and {r.plan_id for r in dms} == {"rt"}
    eod = [r for r in rows(engine) if r.plan_id == "eod"]  # its channel still gets the post
    assert len(eod) == 1
    assert ob.utc(eod[0].not_before) == not_before(T0, late.tier) > T0


def test_dispatcher_sends_each_row_once_and_records_it(engine: sa.Engine) -> None:
    add_plan(engine, realtime_plan())
    add_subscribers(engine, "rt", 5)
    ingest(engine, event(1), event(2))
    clock = FakeClock()
    sender = MemorySender(clock)
    run(Dispatcher(engine, [sender], clock=clock))
    assert len(sender.sent) == 12 and set(sender.counts().values()) == {1}
    got = rows(engine)
    assert {r.status for r in got} == {"sent"}
    assert all(r.message_id and len(r.payload_hash) == 64 and r.sent_at for r in got)
    with engine.connect() as conn:
        last = {r.target: r.last_message_id for r in conn.execute(sa.select(chat_state))}
    assert last["-100"] == max((r.message_id for r in got if r.target == "-100"), key=int)


def test_delayed_tier_is_not_claimed_before_not_before(engine: sa.Engine) -> None:
    add_plan(engine, Plan("d15", "*", Tier("d15", delay_minutes=15), 100, telegram_chat_id=-1))
    ingest(engine, event())
    clock = FakeClock()
    sender = MemorySender(clock)
    run(Dispatcher(engine, [sender], clock=clock))
    assert sender.sent == []  # not due yet: nothing claimed
    run(Dispatcher(engine, [sender], clock=clock), settle=3600)  # waits on the clock
    (_, _, at), = sender.sent  # fmt: skip
    assert at >= T0 + dt.timedelta(minutes=15)


def test_retry_after_reschedules_and_pauses_the_lane(engine: sa.Engine) -> None:
    add_plan(engine, realtime_plan(chat=None))
    add_subscribers(engine, "rt", 4)
    ingest(engine, event())
    clock = FakeClock()
    sender = MemorySender(clock)
    first = rows(engine)[0].idem_key
    sender.fail[first] = [DeliveryError("429", retry_after=7)]
    run(Dispatcher(engine, [sender], clock=clock, batch=1), settle=60)
    assert set(sender.counts().values()) == {1} and len(sender.sent) == 4
    after = [at for k, _, at in sender.sent]
    assert min(after) >= T0 + dt.timedelta(seconds=7)  # the shared lane waited for everyone


def test_blocked_migrated_permanent(engine: sa.Engine) -> None:
    add_plan(engine, realtime_plan(chat=-100))
    add_subscribers(engine, "rt", 2)
    ingest(engine, event(1))
    by_target = {r.target: r.idem_key for r in rows(engine)}
    clock = FakeClock()
    sender = MemorySender(clock)
    sender.fail[by_target["10000"]] = [DeliveryError("blocked", blocked=True)]
    sender.fail[by_target["10001"]] = [DeliveryError("chat not found", permanent=True)]
    sender.fail[by_target["-100"]] = [DeliveryError("migrated", migrated_to="-1009")]
    run(Dispatcher(engine, [sender], clock=clock))
    st = {r.idem_key: r for r in rows(engine)}
    assert st[by_target["10000"]].status == "dead"
    assert st[by_target["10000"]].last_error.startswith("blocked")
    assert st[by_target["10001"]].status == "dead"
    assert st[by_target["-100"]].status == "sent" and st[by_target["-100"]].target == "-1009"
    assert [t for _, t, _ in sender.sent] == ["-1009"]
    with engine.connect() as conn:
        cs = {r.target: r for r in conn.execute(sa.select(chat_state))}
    assert cs["10000"].blocked_at is not None and cs["-100"].migrated_to == "-1009"
    ingest(engine, event(2))  # the next event: the migrated chat's new id, no DM to the blocker
    new = [r for r in rows(engine) if r.event_id == "fill:exec-2"]
    assert sorted(r.target for r in new) == ["-1009", "10001"]


def test_ambiguous_failure_is_probed_never_resent(engine: sa.Engine) -> None:
    add_plan(engine, realtime_plan(chat=-100, dm=False))
    ingest(engine, event())
    key = rows(engine)[0].idem_key
    clock = FakeClock()
    sender = MemorySender(clock)
    sender.fail[key] = [DeliveryError("read timeout")]
    sender.delivered_anyway.add(key)  # the platform got it although we saw a timeout
    run(Dispatcher(engine, [sender], clock=clock), settle=3600)
    assert sender.counts()[key] == 1 and sender.probes == [key]
    (r,) = rows(engine)
    assert r.status == "sent" and r.message_id.startswith("probe-") and r.attempts == 1


def test_transient_failures_back_off_then_dead_letter(engine: sa.Engine) -> None:
    add_plan(engine, realtime_plan(chat=-100, dm=False))
    ingest(engine, event())
    key = rows(engine)[0].idem_key
    clock = FakeClock()
    sender = MemorySender(clock)
    sender.fail[key] = [DeliveryError("502") for _ in range(3)]
    run(Dispatcher(engine, [sender], clock=clock, max_attempts=3, backoff=(1.0, 10.0)), 3600)
    (r,) = rows(engine)
    assert r.status == "dead" and r.attempts == 3 and "exhausted" in r.last_error
    assert sender.sent == [] and len(sender.probes) == 3
    assert clock.now() - T0 >= dt.timedelta(seconds=0.5 + 1 + 2)  # jittered 1, 2, 4 s


def test_startup_resolves_inflight_rows_by_probe(engine: sa.Engine) -> None:
    add_plan(engine, realtime_plan(chat=None))
    add_subscribers(engine, "rt", 3)
    ingest(engine, event())
    clock = FakeClock()
    sender = MemorySender(clock)
    with engine.begin() as conn:  # a dispatcher claimed all three, sent one, then died
        claimed = ob.claim(conn, T0, "dead-worker", 10)
    sender.sent.append((claimed[0].idem_key, claimed[0].target, T0))
    run(Dispatcher(engine, [sender], clock=clock))
    assert set(sender.counts().values()) == {1} and len(sender.sent) == 3
    assert sorted(sender.probes) == sorted(r.idem_key for r in claimed)
    assert {r.status for r in rows(engine)} == {"sent"}


def test_one_dispatcher_per_sqlite_home(engine: sa.Engine) -> None:
    clock = FakeClock()
    first = Dispatcher(engine, [MemorySender(clock)], clock=clock)
    first._start()
    with pytest.raises(SignalsError, match="another dispatcher"):
        Dispatcher(engine, [MemorySender(clock)], clock=clock)._start()
    first.close()


class _UndecidableProbe(MemorySender):
    async def probe(self, msg, last_message_id):  # type: ignore[no-untyped-def]
        raise DeliveryError("probe window used up by other messages", permanent=True)


def test_undecidable_probe_dead_letters_then_requeue_resends(engine: sa.Engine) -> None:
    add_plan(engine, realtime_plan(chat=-100, dm=False))
    ingest(engine, event())
    with engine.begin() as conn:
        ob.claim(conn, T0, "crashed", 1)  # left in flight by a dead dispatcher
    clock = FakeClock()
    sender = _UndecidableProbe(clock)
    run(Dispatcher(engine, [sender], clock=clock))
    (r,) = rows(engine)
    assert r.status == "dead" and r.last_error.startswith("probe:") and sender.sent == []
    with engine.begin() as conn:  # the runbook: an operator checked the chat, then requeues
        assert ob.requeue_dead(conn, clock.now(), reason_like="probe window") == 1
    run(Dispatcher(engine, [MemorySender(clock)], clock=clock))
    (r,) = rows(engine)
    assert r.status == "sent" and r.attempts == 0


def test_run_forever_delivers_what_arrives_and_stops(engine: sa.Engine) -> None:
    add_plan(engine, realtime_plan(chat=-100, dm=False))
    clock = FakeClock()
    sender = MemorySender(clock)
    dispatcher = Dispatcher(engine, [sender], clock=clock, poll=0.01)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run_forever(stop))
        await asyncio.sleep(0.05)
        ingest(engine, event(1))  # the tailer adds rows while the dispatcher runs
        for _ in range(200):
            if sender.sent:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    dispatcher.close()
    assert len(sender.sent) == 1 and {r.status for r in rows(engine)} == {"sent"}


def test_delayed_dm_to_a_lapsed_subscriber_is_skipped(engine: sa.Engine) -> None:
    eod = Plan("eod", "*", Tier("eod", end_of_day=True), 500, dm=True)
    add_plan(engine, eod)
    subs = add_subscribers(engine, "eod", 2)
    ingest(engine, event())
    with engine.begin() as conn:  # the first one cancels before the close
        conn.execute(sa.text("UPDATE subscriptions SET status='canceled' WHERE subscriber_id=:s"),
                     {"s": subs[0]})  # fmt: skip
    clock = FakeClock()
    sender = MemorySender(clock)
    run(Dispatcher(engine, [sender], clock=clock), settle=86_400)
    got = {r.subscriber_id: r for r in rows(engine)}
    assert got[subs[0]].status == "dead" and got[subs[0]].last_error.startswith("skipped")
    assert got[subs[1]].status == "sent" and [t for _, t, _ in sender.sent] == ["10001"]
