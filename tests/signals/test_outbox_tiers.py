"""Property: over random events, tiers (delays, end of day, early closes) and clock paths, no
outbox row is ever claimed or sent before its tier's ``not_before``, and every row is sent once
after it. The oracle for end-of-day tiers walks the NYSE sessions itself."""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import calendar
from signals import outbox as ob
from signals.db import make_engine, outbox
from signals.dispatcher import Dispatcher
from signals.fanout import fan_out
from signals.model import Plan, Tier
from tests.signals.outbox_fixtures import FakeClock, MemorySender, add_plan, add_subscribers, event

START = dt.datetime(2025, 11, 24, tzinfo=dt.UTC)  # Thanksgiving week to the new year:
SPAN_MIN = 60 * 24 * 45  # holidays and the 13:00 early closes of Nov 28 and Dec 24


def oracle(ts: dt.datetime, tier: Tier) -> dt.datetime:
    """The earliest allowed time, computed session by session."""
    if not tier.end_of_day:
        return ts + dt.timedelta(minutes=tier.delay_minutes)
    day = calendar.new_york_date(ts)
    while True:
        if calendar.is_session(day):
            close = calendar.session_open_close(day)[1].to_pydatetime()
            if close >= ts:
                return close + dt.timedelta(minutes=tier.delay_minutes)
        day += dt.timedelta(days=1)


tiers = st.builds(Tier, st.just("t"), st.integers(0, 600), st.booleans())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offsets=st.lists(st.integers(0, SPAN_MIN), min_size=1, max_size=4),
    plan_tiers=st.lists(tiers, min_size=1, max_size=3),
    steps=st.lists(st.integers(0, 60 * 24 * 3), min_size=1, max_size=6),
    lead=st.integers(0, 60 * 24),
)
def test_no_row_is_claimed_before_not_before(
    offsets: list[int], plan_tiers: list[Tier], steps: list[int], lead: int
) -> None:
    with tempfile.TemporaryDirectory() as home:
        engine = make_engine(Path(home), environ={})
        for k, tier in enumerate(plan_tiers):
            add_plan(engine, Plan(f"p{k}", "*", tier, 100, telegram_chat_id=-(k + 1), dm=k == 0))
        add_subscribers(engine, "p0", 2)
        events = [event(i, START + dt.timedelta(minutes=m)) for i, m in enumerate(offsets)]
        clock = FakeClock(min(e.ts for e in events) - dt.timedelta(minutes=lead))
        with engine.begin() as conn:
            fan_out(conn, events, clock.now())
        sender = MemorySender(clock)
        dispatcher = Dispatcher(engine, [sender], clock=clock)
        for minutes in [*steps, 60 * 24 * 60]:  # the last step passes every not_before
            asyncio.run(dispatcher.run_until_idle())
            clock.advance(minutes * 60)
        asyncio.run(dispatcher.run_until_idle())
        dispatcher.close()
        with engine.connect() as conn:
            rows = {r.idem_key: r for r in conn.execute(sa.select(outbox))}
        ts = {e.event_id: e.ts for e in events}
        tier_of = {f"p{k}": t for k, t in enumerate(plan_tiers)}
        assert sender.counts() == {k: 1 for k in rows}  # everything sent, once
        for key, _, at in sender.sent:
            r = rows[key]
            due = oracle(ts[r.event_id], tier_of[r.plan_id])
            assert ob.utc(r.not_before) == due
            assert ob.utc(r.claimed_at) >= due and at >= due, (key, at, due)
        engine.dispose()
