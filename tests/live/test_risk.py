"""Property 6: every pre-trade risk rule rejects its violation; trading states behave."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.limits import AccountLimits, GreekLimits, RiskLimits
from live.clock import SimClock
from live.orders.reports import OrderTicket
from live.risk.engine import RiskEngine, TradingState
from live.risk.rules import RiskContext
from strategies.models import (
    AssetClass,
    Book,
    GreekExposure,
    Leg,
    OrderIntent,
    OrderType,
    Position,
    PositionIntent,
    Side,
    TimeInForce,
)
from tests.live.helpers import CALL_A, CALL_B, T0, equity_ticket, quote, spread_ticket

NOW = T0 + timedelta(hours=1)
QUOTES = {
    "SPY": quote(500.0),
    "QQQ": quote(400.0),
    CALL_A: quote(2.0, 1.9, 2.1, greeks=(0.5, 0.05, 0.3, -0.1)),
    CALL_B: quote(1.0, 0.9, 1.1, greeks=(0.3, 0.04, 0.2, -0.08)),
}


def context(**over: Any) -> RiskContext:
    base: dict[str, Any] = {
        "deployment_id": "dep-one",
        "limits": RiskLimits(),
        "account": AccountLimits(),
        "book": Book.build(100_000.0),
        "account_positions": {},
        "account_greeks": GreekExposure(),
        "account_equity": 100_000.0,
        "open_orders": 0,
        "account_open_orders": 0,
        "quotes": QUOTES,
        "now": NOW,
    }
    return RiskContext(**{**base, **over})


def engine(**limits: Any) -> RiskEngine:
    return RiskEngine(AccountLimits(**limits), SimClock(NOW))


def rule_of(ticket: OrderTicket, eng: RiskEngine | None = None, **over: Any) -> str:
    decision = (eng or engine()).check(ticket, context(**over))
    assert not decision.ok, "expected a rejection"
    return decision.rule


def forced(ticket: OrderTicket, **fields: Any) -> OrderTicket:
    """A ticket whose intent carries values OrderIntent itself would refuse (defense in depth)."""
    intent = ticket.intent
    clone = OrderIntent(
        intent.strategy,
        intent.legs,
        intent.qty,
        intent.order_type,
        intent.limit_price,
        intent.time_in_force,
    )
    for name, value in fields.items():
        object.__setattr__(clone, name, value)
    return replace(ticket, intent=clone)


def test_a_plain_order_passes() -> None:
    assert engine().check(equity_ticket(qty=10), context()).ok
    assert engine().check(spread_ticket(), context()).ok


@pytest.mark.parametrize(("ticket", "why"), [
    (replace(spread_ticket(), qty=1.5), "whole contracts"),
    (replace(spread_ticket(), notional=100.0), "notional"),
    (replace(spread_ticket(), extended_hours=True), "extended hours"),
    (forced(spread_ticket(), legs=spread_ticket().intent.legs * 3), "2-4 legs"),
    (forced(spread_ticket(), legs=(spread_ticket().intent.legs[0],) * 2), "unique"),
    (forced(spread_ticket(), order_type="stop"), "market or limit"),
    (replace(equity_ticket(), notional=100.0, qty=1.0), "mutually exclusive"),
])  # fmt: skip
def test_options_rules(ticket: OrderTicket, why: str) -> None:
    decision = engine().check(ticket, context())
    assert decision.rule == "options_rules" and why in decision.reason


def test_option_time_in_force_must_be_in_the_configured_set() -> None:
    gtc = spread_ticket(time_in_force=TimeInForce.GTC)
    assert engine().check(gtc, context()).ok
    day_only = AccountLimits(option_tifs=frozenset({TimeInForce.DAY}))
    assert rule_of(gtc, account=day_only) == "options_rules"


@pytest.mark.parametrize(("symbol_quote", "why"), [
    (quote(math.nan), "NaN"), (quote(0.0), "<= 0"), (quote(-1.0), "<= 0"),
    (quote(500.0, bid=501.0, ask=500.5), "crossed"),
    (quote(500.0, ts=NOW - timedelta(days=10)), "stale"),
])  # fmt: skip
def test_price_sanity(symbol_quote: Any, why: str) -> None:
    decision = engine().check(equity_ticket(), context(quotes={**QUOTES, "SPY": symbol_quote}))
    assert decision.rule == "price_sanity" and why in decision.reason


def test_price_sanity_missing_quote_and_bad_limit() -> None:
    assert rule_of(equity_ticket("NOPE")) == "price_sanity"
    assert rule_of(replace(equity_ticket(), limit_price=math.inf)) == "price_sanity"


def test_order_size_limits() -> None:
    assert (
        rule_of(equity_ticket(qty=300), limits=RiskLimits(max_order_notional=100_000))
        == "order_size"
    )
    assert rule_of(equity_ticket(qty=150), limits=RiskLimits(max_order_shares=100)) == "order_size"
    assert rule_of(spread_ticket(qty=6), limits=RiskLimits(max_order_contracts=10)) == "order_size"
    assert (
        rule_of(equity_ticket(qty=150), account=AccountLimits(max_order_shares=100)) == "order_size"
    )


def test_position_size_limit() -> None:
    book = Book.build(100_000.0, (Position("SPY", 90, 500.0, 500.0),))
    assert (
        rule_of(equity_ticket(qty=20), book=book, limits=RiskLimits(max_position_shares=100))
        == "position_size"
    )
    assert (
        engine()
        .check(
            equity_ticket(qty=20, side=Side.SELL),
            context(book=book, limits=RiskLimits(max_position_shares=50)),
        )
        .ok
    )


def test_concentration_limit() -> None:
    assert (
        rule_of(equity_ticket(qty=50), limits=RiskLimits(max_concentration=0.2)) == "concentration"
    )
    capped = RiskLimits(max_concentration=0.2)
    assert engine().check(equity_ticket(qty=30), context(limits=capped)).ok


def test_open_order_limits() -> None:
    assert (
        rule_of(equity_ticket(), open_orders=3, limits=RiskLimits(max_open_orders=3))
        == "open_orders"
    )
    assert rule_of(equity_ticket(), account_open_orders=200) == "open_orders"


def test_greek_limits_per_deployment_and_account() -> None:
    assert (
        rule_of(equity_ticket(qty=60), limits=RiskLimits(greeks=GreekLimits(delta=50))) == "greeks"
    )
    vega = AccountLimits(greeks=GreekLimits(vega=100))
    held = GreekExposure(vega=95.0)
    assert rule_of(spread_ticket(qty=1), account=vega, account_greeks=held) == "greeks"
    assert engine().check(spread_ticket(qty=1), context(account=vega)).ok
    gamma = RiskLimits(greeks=GreekLimits(gamma=0.5))
    assert rule_of(spread_ticket(qty=1), limits=gamma) == "greeks"  # +0.01*100 = 1 > 0.5
    theta = RiskLimits(greeks=GreekLimits(theta=1.0))
    assert rule_of(spread_ticket(qty=1), limits=theta) == "greeks"  # -0.02*100 = -2
    long_delta = Book.build(100_000.0, (Position("SPY", 100, 500.0, 500.0),))
    reduce = equity_ticket(qty=50, side=Side.SELL)  # reduces |delta| -> allowed over the cap
    assert (
        engine()
        .check(reduce, context(book=long_delta, limits=RiskLimits(greeks=GreekLimits(delta=10))))
        .ok
    )


def test_buying_power() -> None:
    poor = Book.build(1_000.0)
    loose = RiskLimits(max_concentration=100.0)
    assert rule_of(equity_ticket(qty=10), book=poor, limits=loose) == "buying_power"
    assert engine().check(equity_ticket(qty=1), context(book=poor, limits=loose)).ok


def test_submit_rate_token_bucket_shares_a_per_minute_budget() -> None:
    clock = SimClock(NOW)
    eng = RiskEngine(AccountLimits(max_submits_per_minute=2), clock)
    ok = [eng.check(equity_ticket(qty=1, seq=k), context()) for k in range(3)]
    assert [d.ok for d in ok] == [True, True, False]
    assert ok[2].rule == "submit_rate" and ok[2].throttled
    clock.advance(30)  # one token back after 30 s at 2/min
    assert eng.check(equity_ticket(qty=1, seq=9), context()).ok
    with pytest.raises(ValidationError):
        AccountLimits(max_submits_per_minute=201)  # beyond Alpaca's 200/min account budget


def test_trading_states() -> None:
    reasons: list[dict] = []
    eng = RiskEngine(AccountLimits(), SimClock(NOW), on_change=reasons.append)
    book = Book.build(50_000.0, (Position("SPY", 100, 500.0, 500.0),))
    eng.set("kill_switch", TradingState.HALTED)
    assert rule_of(equity_ticket(qty=1), eng, book=book) == "trading_state"
    liquidation = equity_ticket(qty=100, side=Side.SELL)
    assert eng.check(liquidation, context(book=book), liquidation=True).ok
    eng.clear_all()
    eng.set("daily_loss", TradingState.REDUCING, "dep-one")
    assert eng.state("dep-one") is TradingState.REDUCING and eng.state() is TradingState.ACTIVE
    assert rule_of(equity_ticket(qty=1), eng, book=book) == "trading_state"
    assert eng.check(equity_ticket(qty=40, side=Side.SELL), context(book=book)).ok
    assert rule_of(equity_ticket(qty=140, side=Side.SELL), eng, book=book) == "trading_state"
    assert reasons[-1] == {"dep-one": {"daily_loss": "reducing"}}


def test_daily_loss_reduces_and_drawdown_halts() -> None:
    eng = engine()
    limits = RiskLimits(max_daily_loss=1_000.0, max_drawdown=0.2)
    eng.on_pnl(limits, equity=98_500.0, day_start=100_000.0, peak=100_000.0, scope="d")
    assert eng.state("d") is TradingState.REDUCING
    eng.on_pnl(limits, equity=99_900.0, day_start=100_000.0, peak=100_000.0, scope="d")
    assert eng.state("d") is TradingState.ACTIVE  # back within the day's loss budget
    eng.on_pnl(limits, equity=79_000.0, day_start=79_500.0, peak=100_000.0, scope="d")
    assert eng.state("d") is TradingState.HALTED  # sticky until resume
    eng.on_pnl(limits, equity=99_000.0, day_start=99_000.0, peak=100_000.0, scope="d")
    assert eng.state("d") is TradingState.HALTED


def test_limits_are_frozen_and_refuse_unknown_keys() -> None:
    limits = RiskLimits()
    with pytest.raises(ValidationError):
        limits.max_order_notional = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError):
        RiskLimits(max_order_notionall=1.0)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        RiskLimits(max_order_notional=-1)


def test_option_legs_need_intents_for_the_broker() -> None:
    leg = Leg(CALL_A, Side.SELL, 1, AssetClass.US_OPTION, PositionIntent.SELL_TO_OPEN)
    intent = OrderIntent("x", (leg,), 1)
    shares = Book.build(50_000.0, (Position("SPY", 100.0, 500.0, 500.0, underlying="SPY"),))
    assert engine().check(OrderTicket("aimp-x", intent, "dep-one"), context(book=shares)).ok
    assert CALL_B in QUOTES


def test_naked_calls_are_refused_and_spreads_reserve_their_width() -> None:
    """The accounting's rule, as the backtest and the simulated broker apply it."""
    leg = Leg(CALL_A, Side.SELL, 1, AssetClass.US_OPTION, PositionIntent.SELL_TO_OPEN)
    naked = OrderTicket("aimp-x", OrderIntent("x", (leg,), 1), "dep-one")
    decision = engine().check(naked, context())
    assert decision.rule == "buying_power" and "uncovered short call" in decision.reason
    # a 555/560 call credit spread (0.80 credit at the touch) reserves its 5-point width, 500
    credit = OrderIntent(
        "x",
        (leg, Leg(CALL_B, Side.BUY, 1, AssetClass.US_OPTION, PositionIntent.BUY_TO_OPEN)),
        1,
        OrderType.LIMIT,
        -0.5,
    )
    spread = OrderTicket("aimp-y", credit, "dep-one")
    assert engine().check(spread, context(book=Book.build(420.0))).ok  # 420 + 80 - 500 = 0
    assert rule_of(spread, book=Book.build(400.0)) == "buying_power"
