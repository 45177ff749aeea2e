"""Properties 1 and 2: at most one broker order per intent under every fault knob, and a
duplicate-id answer is a lookup, never a failure (the whole runner, real alpaca-py, the fake)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from live.journal import orders as jo
from live.orders.ids import client_order_id
from live.orders.reports import OrderStatus
from tests.fakes.alpaca_broker import FakeAlpacaBroker
from tests.live.helpers import KEY, SECRET
from tests.live.runner_setup import (
    MONDAY_10,
    alpaca_runner,
    fake_positions,
    local_positions,
    make_home,
)

FAULTS = [
    "504@commit",
    "reset@commit",
    "timeout@commit",
    "429",
    "malformed@commit",
    "empty@commit",
    "html502",
    "html502@commit",
    "500",
    "500@commit",
    "malformed",
    "timeout",
]


def assert_exactly_once(runner, fake: FakeAlpacaBroker) -> str:  # noqa: ANN001
    orders = jo.list_orders(runner.j)
    assert len(orders) == 1, [(o.client_order_id, o.status) for o in orders]
    cid = orders[0].client_order_id
    assert len(fake.orders_with_cid(cid)) == 1 and len(fake.orders) == 1
    assert orders[0].status is OrderStatus.FILLED, orders[0]
    assert local_positions(runner) == fake_positions(fake) == {"SPY": 510.0}
    return cid


@pytest.mark.parametrize("fault", FAULTS)
def test_one_order_per_intent_under_every_fault(
    tmp_path: Path, fake: FakeAlpacaBroker, fault: str
) -> None:
    runner = alpaca_runner(make_home(tmp_path), fake)
    fake.queue_faults("POST /v2/orders", [fault])
    runner.run(cycles=2)
    cid = assert_exactly_once(runner, fake)
    # the decision time is /v2/clock's, not the local clock's
    assert cid == client_order_id("ma-spy", MONDAY_10, 0, 1, salt="2024-03-01")


def test_alpaca_py_auto_retry_path(tmp_path: Path, fake: FakeAlpacaBroker) -> None:
    """alpaca-py itself re-POSTs a 504; the 422 duplicate it gets back is looked up."""
    runner = alpaca_runner(
        make_home(tmp_path), fake, broker_kw={"sdk_retries": 2, "sdk_retry_wait": 0.01}
    )
    fake.queue_faults("POST /v2/orders", ["504@commit"])
    runner.run(cycles=1)
    assert sum(1 for r in fake.requests if r[1] == "POST") == 2
    assert_exactly_once(runner, fake)


def test_a_duplicate_answer_adopts_the_existing_order(
    tmp_path: Path, fake: FakeAlpacaBroker
) -> None:
    """The order already exists (sent by a previous incarnation): 422, lookup, adopt."""
    cid = client_order_id("ma-spy", MONDAY_10, 0, 1, salt="2024-03-01")
    body = {
        "symbol": "SPY",
        "qty": "510",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": cid,
    }
    fake.prices["SPY"] = 98.0
    requests.post(
        f"{fake.url}/v2/orders",
        data=json.dumps(body),
        timeout=5,
        headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET},
    )
    runner = alpaca_runner(make_home(tmp_path), fake)
    runner.run(cycles=1)
    assert_exactly_once(runner, fake)
    events = runner.j.rows("SELECT source FROM order_events WHERE client_order_id=?", cid)
    assert "lookup" in [e[0] for e in events] or "reconcile" in [e[0] for e in events]


def test_a_validation_422_ends_rejected_after_one_lookup(
    tmp_path: Path, fake: FakeAlpacaBroker
) -> None:
    fake.option_tifs = frozenset()  # irrelevant to equity; force a 422 another way:
    fake.set_fault("POST /v2/orders", None)
    runner = alpaca_runner(make_home(tmp_path), fake)
    runner.deployments.refresh(set())
    fake.prices["SPY"] = 98.0
    fake.cash = 10.0  # 403 insufficient buying power: a definitive rejection
    runner.run(cycles=1)
    (order,) = jo.list_orders(runner.j)
    assert (
        order.status is OrderStatus.REJECTED
        and "insufficient buying power" in runner.j.rows("SELECT note FROM orders")[0][0]
    )
    assert fake.orders == {}


def test_the_market_clock_decides_not_the_local_clock(
    tmp_path: Path, fake: FakeAlpacaBroker
) -> None:
    fake.is_open = False  # local time may say anything; /v2/clock says closed
    runner = alpaca_runner(make_home(tmp_path), fake)
    runner.run(cycles=2)
    assert jo.list_orders(runner.j) == [] and fake.orders == {}
