"""The Alpaca adapter (real alpaca-py ``TradingClient``) against the local fake Trading API:
conformance, error classification (property 9) and the fake's own validation."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import requests

from live.brokers.alpaca import AlpacaBroker
from live.errors import (
    AmbiguousSubmit,
    MalformedResponse,
    OrderRejected,
    RetryableBrokerError,
)
from live.orders.reports import OrderStatus
from strategies.models import TimeInForce
from tests.fakes.alpaca_broker import FakeAlpacaBroker
from tests.live.conftest import make_alpaca
from tests.live.helpers import CALL_A, CALL_B, KEY, SECRET, equity_ticket, spread_ticket


def test_orders_positions_account_clock_and_activities(
    alpaca: AlpacaBroker, fake: FakeAlpacaBroker
) -> None:
    simple = alpaca.submit(equity_ticket(qty=10))
    spread = alpaca.submit(spread_ticket(qty=2))
    assert simple.status is OrderStatus.FILLED and simple.filled_avg_price == 500.0
    assert spread.is_mleg and [leg.filled_qty for leg in spread.legs] == [2.0, 2.0]
    assert {p.symbol: p.qty for p in alpaca.positions()} == {"SPY": 10, CALL_A: 2, CALL_B: -2}
    assert alpaca.account().cash == pytest.approx(100_000 - 5_000 - 200)
    assert alpaca.clock().is_open
    fake.expire(CALL_B, underlying_price=580.0)  # short call ITM: assigned, delivers 200 shares
    fake.expire(CALL_A, underlying_price=580.0)
    acts = alpaca.activities()
    assert [(a.activity_type, a.symbol) for a in acts] == [("OPASN", CALL_B), ("OPEXC", CALL_A)]
    assert {p.symbol: p.qty for p in alpaca.positions()} == {"SPY": 10.0}
    assert alpaca.get_order(simple.client_order_id).broker_id == simple.broker_id
    assert alpaca.get_order("never-sent") is None


def test_list_orders_walks_500_order_pages(alpaca: AlpacaBroker, fake: FakeAlpacaBroker) -> None:
    cids = fake.seed_orders(1_203, same_ts=7)  # ties straddle page boundaries
    reports = alpaca.list_orders()
    assert sorted(r.client_order_id for r in reports) == sorted(cids)
    pages = [r for r in fake.requests if r[1] == "GET" and r[2] == "/v2/orders"]
    assert len(pages) >= 3


@pytest.mark.parametrize(("fault", "error", "calls"), [
    ("html502", RetryableBrokerError, 3), ("500", RetryableBrokerError, 3),
    ("reset", RetryableBrokerError, 3), ("timeout", RetryableBrokerError, 3),
    ("malformed", MalformedResponse, 1), ("empty", MalformedResponse, 1),
    ("301", MalformedResponse, 1),
])  # fmt: skip
def test_read_failures_are_classified(
    fake: FakeAlpacaBroker, fault: str, error: type, calls: int
) -> None:
    alpaca = make_alpaca(fake)
    fake.set_fault("GET /v2/positions", fault)
    with pytest.raises(error):
        alpaca.positions()
    assert sum(1 for r in fake.requests if r[2] == "/v2/positions") == calls
    fake.set_fault("GET /v2/positions", None)
    assert alpaca.positions() == []


@pytest.mark.parametrize(
    "fault",
    [
        "504@commit",
        "reset@commit",
        "timeout@commit",
        "malformed@commit",
        "empty@commit",
        "500@commit",
        "html502@commit",
        "html502",
        "malformed",
    ],
)
def test_unknown_submit_outcomes_are_ambiguous(fake: FakeAlpacaBroker, fault: str) -> None:
    alpaca = make_alpaca(fake)
    fake.queue_faults("POST /v2/orders", [fault])
    ticket = equity_ticket()
    with pytest.raises(AmbiguousSubmit) as err:
        alpaca.submit(ticket)
    assert err.value.client_order_id == ticket.client_order_id
    assert len(fake.orders_with_cid(ticket.client_order_id)) == int("@commit" in fault)


def test_duplicate_id_is_ambiguous_never_rejected(alpaca: AlpacaBroker) -> None:
    alpaca.submit(equity_ticket())
    with pytest.raises(AmbiguousSubmit) as err:
        alpaca.submit(equity_ticket())
    assert (err.value.status, err.value.code) == (422, 40010001)


def test_alpaca_py_auto_retry_of_a_committed_504_surfaces_as_duplicate(
    fake: FakeAlpacaBroker,
) -> None:
    alpaca = make_alpaca(fake, sdk_retries=2, sdk_retry_wait=0.01)
    fake.queue_faults("POST /v2/orders", ["504@commit"])
    with pytest.raises(AmbiguousSubmit) as err:  # alpaca-py re-POSTed; the fake said duplicate
        alpaca.submit(equity_ticket())
    assert err.value.code == 40010001
    assert sum(1 for r in fake.requests if r[1] == "POST") == 2
    assert len(fake.orders) == 1


def test_429_on_submit_waits_for_the_reset_and_retries_the_same_id(fake: FakeAlpacaBroker) -> None:
    alpaca = make_alpaca(fake)
    fake.queue_faults("POST /v2/orders", ["429"])
    report = alpaca.submit(equity_ticket())
    assert report.status is OrderStatus.FILLED and len(fake.orders) == 1


def test_definitive_rejections(fake: FakeAlpacaBroker) -> None:
    alpaca = make_alpaca(fake)
    with pytest.raises(OrderRejected) as err:
        alpaca.submit(equity_ticket(qty=1_000))  # $500k > $100k cash
    assert (err.value.status, err.value.code) == (403, 40310000)
    fake.option_tifs = frozenset({"day"})
    for bad in (
        replace(spread_ticket(), qty=1.5),
        replace(spread_ticket(), extended_hours=True),
        spread_ticket(time_in_force=TimeInForce.GTC),
    ):
        with pytest.raises(AmbiguousSubmit) as amb:  # 422 40010001: look it up, never "rejected"
            alpaca.submit(bad)
        assert amb.value.status == 422 and alpaca.get_order(bad.client_order_id) is None
    assert fake.orders == {}


@pytest.mark.parametrize(("body", "needle"), [
    ({"order_class": "mleg", "qty": "1", "type": "market", "time_in_force": "day",
      "legs": [{"symbol": CALL_A, "ratio_qty": "1", "side": "buy"}]}, "2 to 4 legs"),
    ({"order_class": "mleg", "qty": "1", "type": "market", "time_in_force": "day",
      "legs": [{"symbol": CALL_A, "ratio_qty": "1", "side": "buy"}] * 2}, "unique"),
    ({"order_class": "mleg", "qty": "1", "type": "stop", "time_in_force": "day",
      "legs": [{"symbol": CALL_A, "ratio_qty": "1", "side": "buy"},
               {"symbol": CALL_B, "ratio_qty": "1", "side": "sell"}]}, "market or limit"),
    ({"symbol": CALL_A, "notional": "100", "side": "buy", "type": "market",
      "time_in_force": "day"}, "whole number"),
    ({"symbol": "SPY", "qty": "1", "notional": "5", "side": "buy", "type": "market",
      "time_in_force": "day"}, "exactly one"),
    ({"symbol": "SPY", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day",
      "client_order_id": "x" * 49}, "48 characters"),
])  # fmt: skip
def test_the_fake_validates_like_alpaca(fake: FakeAlpacaBroker, body: dict, needle: str) -> None:
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    resp = requests.post(f"{fake.url}/v2/orders", data=json.dumps(body), headers=headers, timeout=5)
    assert resp.status_code == 422 and resp.json()["code"] == 40010001
    assert needle in resp.json()["message"]
    unauthorized = requests.get(f"{fake.url}/v2/account", timeout=5)
    assert unauthorized.status_code == 401 and unauthorized.json()["code"] == 40110000
