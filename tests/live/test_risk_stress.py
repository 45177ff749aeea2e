"""The max_stressed_loss pre-trade rule: the engine refuses an order whose book's worst scenario
loss breaches the limit, hedges pass, the number is the stress library's, and the replayed
runner on the simulated broker journals the refusal with its reason."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from contracts.limits import AccountLimits, RiskLimits
from contracts.manifest import DeploymentManifest
from live.clock import SimClock
from live.deployments.manifests import write_manifest
from live.orders.reports import OrderTicket
from live.replay import replay
from live.risk.engine import RiskEngine
from live.risk.rules import RiskContext
from live.risk.stress import worst_loss
from strategies.backtest.synthetic import synthetic_chains
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
)
from strategies.pricing import bs_price, implied_vol
from strategies.stress import STANDARD_SPOT_SHOCKS, STANDARD_VOL_POINTS
from tests.live.helpers import CALL_A, OPTIONS_COSTS, T0, equity_ticket, limits, quote
from tests.live.test_replay_options import PARAMS, write_lake

NOW = T0 + timedelta(hours=1)  # 2024-03-01; CALL_A expires 2024-04-26 (56 days)
PUT = "SPY240426P00480000"
QUOTES = {
    "SPY": quote(500.0),
    CALL_A: quote(2.0, 1.9, 2.1, greeks=(0.2, 0.01, 0.3, -0.1)),
    PUT: quote(4.0, 3.9, 4.1, greeks=(-0.25, 0.01, 0.5, -0.1)),
}


def context(**over: Any) -> RiskContext:
    base: dict[str, Any] = {
        "deployment_id": "dep-one", "limits": RiskLimits(), "account": AccountLimits(),
        "book": Book.build(1_000_000.0), "account_positions": {},
        "account_greeks": GreekExposure(), "account_equity": 100_000.0, "open_orders": 0,
        "account_open_orders": 0, "quotes": QUOTES, "now": NOW,
    }  # fmt: skip
    return RiskContext(**{**base, **over})


def option_ticket(symbol: str, side: Side, qty: int, price: float) -> OrderTicket:
    intent_ = PositionIntent.BUY_TO_OPEN if side is Side.BUY else PositionIntent.SELL_TO_OPEN
    leg = Leg(symbol, side, 1, AssetClass.US_OPTION, intent_)
    intent = OrderIntent("dep-one", (leg,), qty, OrderType.LIMIT, price)
    return OrderTicket(f"cid-{symbol}-{side}-{qty}", intent, "dep-one")


def check(ticket: OrderTicket, **over: Any) -> Any:
    return RiskEngine(AccountLimits(), SimClock(NOW)).check(ticket, context(**over))


def _reference_worst(qty: float) -> float:
    """The short put's worst grid loss by hand with bs_price (QuantLib-checked elsewhere)."""
    t = 56 / 365
    iv = implied_vol(4.0, 500.0, 480.0, t, 0.0, 0.0, False)
    now = bs_price(500.0, 480.0, t, 0.0, iv, 0.0, False)
    worst = max(
        -qty * 100.0 * (bs_price(500.0 * (1 + s), 480.0, t, 0.0, iv + v / 100, 0.0, False) - now)
        for s in STANDARD_SPOT_SHOCKS
        for v in STANDARD_VOL_POINTS
    )
    return float(worst)


def test_worst_loss_is_the_grid_revaluation_of_the_book() -> None:
    loss, where = worst_loss({PUT: (-5.0, True)}, QUOTES, NOW.date())
    assert loss == pytest.approx(_reference_worst(-5.0), rel=1e-9)
    assert where == "spot -10%, vol +10 pts"
    assert worst_loss({"SPY": (100.0, False)}, QUOTES, NOW.date())[0] == pytest.approx(5_000.0)


def test_an_order_breaching_the_stressed_loss_is_refused_with_its_reason() -> None:
    capped = RiskLimits(max_stressed_loss=5_000.0, max_concentration=100.0)
    worst = _reference_worst(-5.0)  # about 8,600 for five short puts
    assert worst > 5_000.0
    decision = check(option_ticket(PUT, Side.SELL, 5, 3.9), limits=capped)
    assert not decision.ok and decision.rule == "max_stressed_loss"
    assert f"{worst:,.0f}" in decision.reason and "max 5,000" in decision.reason
    assert check(option_ticket(PUT, Side.SELL, 1, 3.9), limits=capped).ok  # ~1,700: within


def test_no_limit_means_no_check_and_old_manifests_stay_valid() -> None:
    assert RiskLimits().max_stressed_loss is None
    assert check(option_ticket(PUT, Side.SELL, 5, 3.9)).ok
    fields = DeploymentManifest.model_json_schema()["$defs"]["RiskLimits"]["properties"]
    assert "max_stressed_loss" in fields  # optional: absent from older manifests


def test_a_hedge_passes_even_over_the_limit() -> None:
    held = Book.build(1_000_000.0, (Position(PUT, -5, 4.0, 4.0, AssetClass.US_OPTION),))
    capped = RiskLimits(max_stressed_loss=1_000.0, max_concentration=100.0)
    hedge = equity_ticket(qty=20, side=Side.SELL)  # short stock cuts the downside loss
    assert check(hedge, book=held, limits=capped).ok
    more = option_ticket(PUT, Side.SELL, 1, 3.9)
    assert check(more, book=held, limits=capped).rule == "max_stressed_loss"


def test_account_limit_and_missing_quote() -> None:
    account = AccountLimits(max_stressed_loss=2_000.0)
    eng = RiskEngine(account, SimClock(NOW))
    decision = eng.check(option_ticket(PUT, Side.SELL, 2, 3.9), context(account=account))
    assert decision.rule == "max_stressed_loss" and decision.reason.startswith("account")
    no_spot = {k: v for k, v in QUOTES.items() if k != "SPY"}
    capped = RiskLimits(max_stressed_loss=5_000.0)
    decision = check(option_ticket(PUT, Side.SELL, 1, 3.9), limits=capped, quotes=no_spot)
    assert not decision.ok  # price_sanity or the stress rule: never sent unstressed


@pytest.mark.parametrize(("cap", "refused"), [(500.0, True), (1e9, False)])
def test_replayed_wheel_on_the_sim_broker_journals_the_refusal(
    tmp_path: Path, cap: float, refused: bool
) -> None:
    """The wheel sells puts; a 500 $ stressed-loss cap refuses its first order in the journal."""
    chains = synthetic_chains("SPY", date(2024, 9, 3), 6, seed=11, s0=500.0, strike_step=5.0)
    home = tmp_path / "home"
    write_lake(home, chains)
    manifest = {
        "manifest_id": "w", "strategy": "wheel", "interface_version": 1, "params": PARAMS,
        "capital": 100_000.0, "risk_limits": limits(max_stressed_loss=cap),
        "costs": OPTIONS_COSTS,
    }  # fmt: skip
    write_manifest(home / "live" / "deployments", "wheel", manifest)
    sessions = sorted(chains["session"].unique().to_list())
    result = replay(home, sessions[0], sessions[-1])
    assert result.orders, "the wheel decided nothing"
    first = result.orders[0]
    assert first["status"] == ("risk_rejected" if refused else "filled")
    con = sqlite3.connect(result.home / "live" / "journal.sqlite")
    notes = pl.DataFrame(
        con.execute("SELECT status, note FROM orders").fetchall(), schema=["status", "note"],
        orient="row",
    )  # fmt: skip
    con.close()
    rejected = notes.filter(pl.col("status") == "risk_rejected")
    if refused:
        assert rejected.height >= 1
        assert rejected["note"][0].startswith("max_stressed_loss: deployment stressed loss")
        assert "max 500" in rejected["note"][0]
    else:
        assert rejected.is_empty()
