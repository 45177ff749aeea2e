"""The embedded simulated broker: fills, slippage, partials, rejections, buying power, expiry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from live.brokers.sim import SimBroker, SimConfig
from live.clock import SimClock
from live.errors import AmbiguousSubmit, OrderRejected
from live.orders.ids import client_order_id
from live.orders.reports import OrderStatus, OrderTicket, Quote
from strategies.models import AssetClass, Leg, OrderIntent, OrderType, PositionIntent, Side
from tests.live.helpers import CALL_A, CALL_B, T0, equity_ticket, quote, spread_ticket

PUT = "SPY240426P00500000"


def make(quotes: dict[str, Quote], **cfg: object) -> tuple[SimBroker, SimClock]:
    clock = SimClock(T0)
    return SimBroker(quotes.get, clock, SimConfig(**cfg)), clock  # type: ignore[arg-type]


def option_ticket(symbol: str, side: Side, qty: int, seq: int = 5) -> OrderTicket:
    pi = PositionIntent.BUY_TO_OPEN if side is Side.BUY else PositionIntent.SELL_TO_OPEN
    intent = OrderIntent("d", (Leg(symbol, side, 1, AssetClass.US_OPTION, pi),), qty)
    return OrderTicket(client_order_id("d", T0, seq, 1), intent, "d")


def test_market_orders_fill_with_slippage() -> None:
    broker, _ = make({"SPY": quote(500.0, 499.9, 500.1)}, slippage_bps=10)
    buy = broker.submit(equity_ticket(qty=10))
    assert buy.status is OrderStatus.FILLED and buy.filled_avg_price == pytest.approx(500.1 * 1.001)
    sell = broker.submit(equity_ticket(qty=4, side=Side.SELL, seq=1))
    assert sell.filled_avg_price == pytest.approx(499.9 * 0.999)
    assert [(p.symbol, p.qty) for p in broker.positions()] == [("SPY", 6.0)]


def test_partial_fills_complete_on_later_steps() -> None:
    broker, _ = make({"SPY": quote(100.0)}, fill_fraction=0.5, slippage_bps=0)
    first = broker.submit(equity_ticket(qty=10))
    assert (first.status, first.filled_qty) == (OrderStatus.PARTIALLY_FILLED, 5.0)
    seen = []
    for _ in range(4):  # half of what is left each step: 5 -> 8 -> 9 -> 10
        broker.step()
        seen.append(broker.get_order(first.client_order_id).filled_qty)
    assert seen == [8.0, 9.0, 10.0, 10.0]
    assert broker.get_order(first.client_order_id).status is OrderStatus.FILLED


def test_limit_orders_wait_until_marketable_and_day_orders_expire() -> None:
    quotes = {"SPY": quote(100.0)}
    broker, clock = make(quotes, slippage_bps=0)
    ticket = equity_ticket(qty=1, order_type=OrderType.LIMIT, limit_price=95.0)
    assert broker.submit(ticket).status is OrderStatus.NEW
    quotes["SPY"] = quote(94.0)
    broker.step()
    assert broker.get_order(ticket.client_order_id).status is OrderStatus.FILLED
    stale = equity_ticket(qty=1, seq=1, order_type=OrderType.LIMIT, limit_price=90.0)
    broker.submit(stale)
    clock.advance(6 * 3600)  # past the 16:00 New York close
    broker.step()
    assert broker.get_order(stale.client_order_id).status is OrderStatus.EXPIRED


def test_rejections_like_alpaca() -> None:
    broker, _ = make(
        {"SPY": quote(100.0), CALL_A: quote(2.0), CALL_B: quote(1.0)},
        reject_symbols=frozenset({"QQQ"}),
    )
    with pytest.raises(OrderRejected, match="not tradable"):
        broker.submit(equity_ticket("QQQ"))
    with pytest.raises(OrderRejected, match="whole contracts"):
        broker.submit(replace(spread_ticket(), qty=1.5))
    with pytest.raises(OrderRejected, match="extended hours"):
        broker.submit(replace(spread_ticket(), extended_hours=True))
    ok = broker.submit(spread_ticket())
    with pytest.raises(AmbiguousSubmit):  # a duplicate id: look it up, never "rejected"
        broker.submit(spread_ticket())
    assert broker.get_order(ok.client_order_id).status is OrderStatus.FILLED


def test_buying_power_is_enforced() -> None:
    broker, _ = make({"SPY": quote(500.0)}, cash=1_000.0)
    with pytest.raises(OrderRejected) as err:
        broker.submit(equity_ticket(qty=10))
    assert err.value.code == 40310000
    assert broker.submit(equity_ticket(qty=1, seq=1)).status is OrderStatus.FILLED


def test_mleg_fills_all_legs_together_at_a_net_price() -> None:
    broker, _ = make({CALL_A: quote(2.0, 1.9, 2.1), CALL_B: quote(1.0, 0.9, 1.1)})
    report = broker.submit(spread_ticket(qty=2, limit_price=1.5))
    assert report.status is OrderStatus.FILLED
    # each leg at mid +/- 25% of its spread (the options backtest's fill model), no bps slippage
    assert report.filled_avg_price == pytest.approx(2.05 - 0.95)
    assert {p.symbol: p.qty for p in broker.positions()} == {CALL_A: 2.0, CALL_B: -2.0}
    assert broker.account().cash == pytest.approx(100_000 - 2 * 100 * 1.10)
    touch, _ = make(
        {CALL_A: quote(2.0, 1.9, 2.1), CALL_B: quote(1.0, 0.9, 1.1)},
        option_fill_fraction=None,
        slippage_bps=0,
    )
    assert touch.submit(spread_ticket(qty=1)).filled_avg_price == pytest.approx(2.1 - 0.9)


def test_option_limits_fill_only_when_the_fill_model_reaches_them() -> None:
    broker, _ = make({PUT: quote(2.0, 1.8, 2.2)})  # model sell price 2.0 - 0.1 = 1.9
    at_bid = broker.submit(option_ticket_limit(PUT, Side.SELL, 1.80, seq=1))
    assert at_bid.status is OrderStatus.FILLED and at_bid.filled_avg_price == pytest.approx(1.9)
    at_mid = broker.submit(option_ticket_limit(PUT, Side.SELL, 2.00, seq=2))
    assert at_mid.status is OrderStatus.NEW  # better than the model price: rests


def option_ticket_limit(symbol: str, side: Side, limit: float, seq: int) -> OrderTicket:
    pi = PositionIntent.BUY_TO_OPEN if side is Side.BUY else PositionIntent.SELL_TO_OPEN
    leg = Leg(symbol, side, 1, AssetClass.US_OPTION, pi)
    intent = OrderIntent("d", (leg,), 1, OrderType.LIMIT, limit)
    return OrderTicket(client_order_id("d", T0, seq, 1), intent, "d")


@pytest.mark.parametrize(("symbol", "side", "spot", "kind", "shares"), [
    (PUT, Side.SELL, 480.0, "OPASN", 100.0),  # short put ITM: assigned, buys 100 at 500
    (CALL_A, Side.BUY, 560.0, "OPEXC", 100.0),  # long call ITM: exercised
    (CALL_A, Side.BUY, 550.0, "OPEXP", None),  # OTM: expires
])  # fmt: skip
def test_options_are_settled_at_expiry(
    symbol: str, side: Side, spot: float, kind: str, shares: float | None
) -> None:
    quotes = {symbol: quote(3.0, 2.9, 3.1), "SPY": quote(spot)}
    clock = SimClock(datetime(2024, 4, 26, 14, 0, tzinfo=UTC))
    broker = SimBroker(quotes.get, clock)
    broker.submit(option_ticket(symbol, side, 1))
    clock.advance(7 * 3600)  # 17:00 New York (EDT) on expiry day: after the close
    broker.step()
    acts = broker.activities()
    assert [(a.activity_type, a.symbol) for a in acts] == [(kind, symbol)]
    held = {p.symbol: p.qty for p in broker.positions()}
    assert symbol not in held and held.get("SPY") == shares


def test_list_orders_walks_small_pages_and_state_persists(tmp_path: Path) -> None:
    path = tmp_path / "sim.jsonl"
    clock = SimClock(T0)
    broker = SimBroker({"SPY": quote(10.0)}.get, clock, state_path=path)
    for k in range(10):
        clock.advance(0.001 if k % 3 else 0)  # some share a timestamp across a page boundary
        broker.submit(equity_ticket(qty=1, seq=k))
    reports = broker.list_orders(limit=3)
    assert sorted(r.client_order_id for r in reports) == sorted(
        equity_ticket(seq=k).client_order_id for k in range(10)
    )
    again = SimBroker({"SPY": quote(10.0)}.get, clock, state_path=path)
    assert len(again.list_orders()) == 10 and again.positions()[0].qty == 10
    assert again.account().cash == pytest.approx(broker.account().cash)
