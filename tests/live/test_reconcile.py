"""Property 4 (start-up reconciliation fails closed; missing reports never mean flat) and
property 9 (malformed/hostile answers: no crash loop, no orders), with option activities."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from live.journal import orders as jo
from live.orders.ids import client_order_id
from live.orders.reports import OrderStatus
from live.risk.engine import TradingState
from tests.fakes.alpaca_broker import FakeAlpacaBroker
from tests.live.helpers import KEY, SECRET, T0, spread_ticket
from tests.live.runner_setup import (
    MONDAY_10,
    alpaca_runner,
    fake_positions,
    local_positions,
    make_home,
)

HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}


def post(fake: FakeAlpacaBroker, body: dict) -> dict:
    resp = requests.post(f"{fake.url}/v2/orders", data=json.dumps(body), headers=HEADERS, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize("fault", ["500", "malformed", "html502", "timeout"])
def test_a_failed_positions_answer_halts_and_nothing_trades(
    tmp_path: Path, fake: FakeAlpacaBroker, fault: str
) -> None:
    fake.set_fault("GET /v2/positions", fault)
    runner = alpaca_runner(make_home(tmp_path), fake, reconcile_every=1)
    runner.run(cycles=1)  # no crash loop: the cycle completes
    assert runner.risk.state() is TradingState.HALTED
    assert "reconcile" in runner.risk.reasons()[""]
    assert fake.orders == {} and jo.list_orders(runner.j) == []
    fake.set_fault("GET /v2/positions", None)  # the next periodic reconciliation recovers
    runner.run(cycles=1)
    assert runner.risk.state() is TradingState.ACTIVE
    assert local_positions(runner) == fake_positions(fake) == {"SPY": 510.0}


def test_missing_positions_never_mean_flat(tmp_path: Path, fake: FakeAlpacaBroker) -> None:
    runner = alpaca_runner(make_home(tmp_path), fake)
    runner.run(cycles=1)
    assert local_positions(runner) == {"SPY": 510.0}
    fake.positions.clear()  # the broker "forgets" (or an error is masked as an empty list)
    assert not runner.reconcile(full=True)
    assert runner.risk.state() is TradingState.HALTED
    assert local_positions(runner) == {"SPY": 510.0}  # we did not flatten our books
    assert jo.saved_positions(runner.j) == {("ma-spy", "SPY"): 510.0}


def test_orders_with_our_prefix_are_adopted(tmp_path: Path, fake: FakeAlpacaBroker) -> None:
    """A journal lost an order (or another incarnation sent it): reconciliation adopts it."""
    fake.prices["QQQ"] = 200.0
    cid = client_order_id("ma-spy", T0, 3, 1)
    post(
        fake,
        {
            "symbol": "QQQ",
            "qty": "5",
            "side": "buy",
            "type": "market",
            "time_in_force": "day",
            "client_order_id": cid,
        },
    )
    post(
        fake,
        {
            "symbol": "QQQ",
            "qty": "1",
            "side": "buy",
            "type": "market",
            "time_in_force": "day",
            "client_order_id": "someone-else-1",
        },
    )
    runner = alpaca_runner(make_home(tmp_path), fake, adopt_external=True)
    runner.start()
    adopted = jo.get_order(runner.j, cid)
    assert adopted is not None and adopted.deployment_id == "ma-spy"
    assert adopted.status is OrderStatus.FILLED
    assert jo.get_order(runner.j, "someone-else-1") is None
    assert runner.ledger.holdings["ma-spy"]["QQQ"].qty == 5
    assert runner.ledger.holdings["_external"]["QQQ"].qty == 1  # opted in: booked, not hidden
    assert runner.risk.state() is TradingState.ACTIVE


def test_unexplained_positions_halt_by_default(tmp_path: Path, fake: FakeAlpacaBroker) -> None:
    fake.positions["IWM"] = [3.0, 190.0, "us_equity"]
    runner = alpaca_runner(make_home(tmp_path), fake)
    runner.run(cycles=1)
    assert runner.risk.state() is TradingState.HALTED and fake.orders == {}


def test_pending_intents_are_resolved_by_client_id(tmp_path: Path, fake: FakeAlpacaBroker) -> None:
    """A crash left two orders 'submitting': one reached the broker, one never did."""
    home = make_home(tmp_path)
    runner = alpaca_runner(home, fake)
    sent, lost = client_order_id("ma-spy", T0, 0, 1), client_order_id("ma-spy", T0, 1, 1)
    from tests.live.helpers import equity_ticket

    intents = [(0, equity_ticket(qty=2).intent, sent), (1, equity_ticket(qty=3).intent, lost)]
    # decided at the market's time (Monday 10:00): the restart is within that session
    jo.record_decision(runner.j, "ma-spy", "2024-03-01", MONDAY_10, intents, T0)
    for cid in (sent, lost):
        jo.update_order(runner.j, cid, T0, "submit", status=OrderStatus.SUBMITTING)
    post(
        fake,
        {
            "symbol": "SPY",
            "qty": "2",
            "side": "buy",
            "type": "market",
            "time_in_force": "day",
            "client_order_id": sent,
        },
    )
    runner.start()
    assert jo.get_order(runner.j, sent).status is OrderStatus.FILLED
    assert jo.get_order(runner.j, lost).status is OrderStatus.SUBMITTING  # not re-sent yet
    assert len(fake.orders) == 1
    runner.cycle()  # trading state known: the never-seen order is sent, same id, once
    assert jo.get_order(runner.j, lost).status is OrderStatus.FILLED
    assert len(fake.orders_with_cid(lost)) == 1
    assert local_positions(runner) == fake_positions(fake)


def test_option_activities_are_booked(tmp_path: Path, fake: FakeAlpacaBroker) -> None:
    runner = alpaca_runner(make_home(tmp_path), fake)
    runner.start()
    ticket = spread_ticket(qty=2)
    intents = [(0, ticket.intent, ticket.client_order_id)]
    jo.record_decision(runner.j, "ma-spy", "2024-03-01", T0, intents, T0)
    runner.manager.send(jo.get_order(runner.j, ticket.client_order_id))
    assert local_positions(runner) == fake_positions(fake)
    long_leg, short_leg = (leg.symbol for leg in ticket.intent.legs)
    fake.expire(short_leg, underlying_price=557.0)  # 560 call OTM: expires
    fake.expire(long_leg, underlying_price=557.0)  # 555 call ITM: exercised, +200 shares
    assert runner.reconcile(full=False)
    assert local_positions(runner) == fake_positions(fake) == {"SPY": 200.0}
    kinds = {r[0] for r in runner.j.rows("SELECT activity_type FROM activities")}
    assert kinds == {"OPEXP", "OPEXC"}
    assert runner.reconcile(full=False)  # idempotent: activities are booked once
    assert local_positions(runner) == {"SPY": 200.0}


@pytest.mark.parametrize(("route", "fault"), [
    ("GET /v2/orders", "malformed"), ("GET /v2/clock", "html502"), ("GET /v2/account", "empty"),
])  # fmt: skip
def test_hostile_answers_never_place_orders(
    tmp_path: Path, fake: FakeAlpacaBroker, route: str, fault: str
) -> None:
    fake.set_fault(route, fault)
    runner = alpaca_runner(make_home(tmp_path), fake)
    runner.run(cycles=4)
    assert fake.orders == {} and runner.risk.state() is TradingState.HALTED
    assert runner.j.last_cycle()["finished_at"] is not None
