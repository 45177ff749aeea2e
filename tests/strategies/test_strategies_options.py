"""Option strategies on synthetic chains: selection, exits, and each strategy's trades."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import polars as pl
import pytest

from strategies.backtest.options_engine import run_options_backtest
from strategies.backtest.synthetic import synthetic_chains
from strategies.models import (
    NEW_YORK,
    AssetClass,
    Book,
    MarketSnapshot,
    OrderType,
    Position,
    PositionIntent,
    Right,
)
from strategies.options import (
    Butterfly,
    ButterflyConfig,
    ContractTarget,
    CoveredCall,
    CoveredCallConfig,
    ExitRules,
    IronCondor,
    IronCondorConfig,
    MomentumOptions,
    MomentumOptionsConfig,
    OptionChainView,
    Wheel,
    WheelConfig,
    exit_reason,
    select_by_delta,
)
from strategies.options.orders import close_intent

START = date(2023, 1, 2)


def path(*legs: tuple[int, float]) -> np.ndarray:
    """Piecewise log-linear spot path: (days, total return) per leg, starting at 100."""
    steps = np.concatenate([np.full(n, np.log1p(r) / n) for n, r in legs])
    return 100 * np.exp(np.r_[0.0, np.cumsum(steps)])


@pytest.fixture(scope="module")
def day_chain() -> OptionChainView:
    frame = synthetic_chains("SPY", START, 1, spots=np.array([100.0]))
    return OptionChainView(frame)


def test_select_by_delta_matches_brute_force(day_chain: OptionChainView) -> None:
    target = ContractTarget(Right.PUT, 0.30, dte=30, dte_min=20, dte_max=45)
    quote = select_by_delta(day_chain, target)
    frame = day_chain.frame.filter(
        pl.col("right") == "P", pl.col("dte").is_between(20, 45), pl.col("bid") > 0
    )
    best_dte = frame.select((pl.col("dte") - 30).abs().min()).item()
    expiry = frame.filter((pl.col("dte") - 30).abs() == best_dte).get_column("dte").min()
    rows = frame.filter(pl.col("dte") == expiry).with_columns(d=(pl.col("delta").abs() - 0.3).abs())
    expected = rows.sort("d", "strike").row(0, named=True)
    assert quote is not None and quote.contract == expected["contract"]
    assert quote.right is Right.PUT and quote.delta < 0 and quote.dte == expiry
    floor = select_by_delta(day_chain, ContractTarget(Right.CALL, 0.3), strike_floor=110.0)
    assert floor is not None and floor.strike >= 110.0
    assert select_by_delta(day_chain, ContractTarget(Right.CALL, 0.3, 400, 400, 500)) is None


def _short_put(avg: float, mark: float, expiry: date = date(2023, 2, 3)) -> Position:
    return Position(
        "SPY230203P00095000",
        -1,
        avg,
        mark,
        AssetClass.US_OPTION,
        "SPY",
        expiry,
        95.0,
        Right.PUT,
        -0.3,
        0.02,
        0.1,
        -0.05,
    )


def test_exit_rules() -> None:
    rules = ExitRules(profit_target=0.5, stop_loss=2.0, exit_dte=5)
    today = date(2023, 1, 20)
    assert exit_reason((_short_put(2.0, 1.5),), today, rules) is None
    assert "profit target" in str(exit_reason((_short_put(2.0, 1.0),), today, rules))
    assert "stop loss" in str(exit_reason((_short_put(2.0, 6.0),), today, rules))
    assert "days to expiry" in str(exit_reason((_short_put(2.0, 1.9),), date(2023, 1, 30), rules))
    assert exit_reason((_short_put(2.0, 1.9),), date(2023, 2, 3), ExitRules(None, None)) is None


def test_close_intent_uses_ratio_and_whole_units(day_chain: OptionChainView) -> None:
    rows = day_chain.frame.filter(pl.col("dte") == day_chain.col("dte").min()).head(2)
    positions = tuple(
        Position(
            r["contract"],
            q,
            1.0,
            1.0,
            AssetClass.US_OPTION,
            "SPY",
            r["expiry"],
            r["strike"],
            Right(r["right"]),
        )
        for r, q in zip(rows.iter_rows(named=True), (2, -4), strict=True)
    )
    intent = close_intent("t", positions, day_chain, 0.5, "close", "test")
    assert intent is not None
    assert intent.qty == 2 and [leg.ratio_qty for leg in intent.legs] == [1, 2]
    assert [leg.position_intent for leg in intent.legs] == [
        PositionIntent.SELL_TO_CLOSE,
        PositionIntent.BUY_TO_CLOSE,
    ]
    price = intent.limit_price
    assert intent.order_type is OrderType.LIMIT and price is not None and round(price, 2) == price


def _run(strategy, spots: np.ndarray, **kwargs):
    chains = synthetic_chains("SPY", START, spots.size, spots=spots)
    return run_options_backtest(strategy, chains, **kwargs)


def test_wheel_completes_a_cycle() -> None:
    spots = path((20, -0.12), (45, 0.30))
    res = _run(
        Wheel(WheelConfig("SPY", put_delta=0.35, call_delta=0.35, dte=14, dte_min=5, dte_max=30)),
        spots,
    )
    events = res.fills.filter(pl.col("kind") != "trade").select("symbol", "side", "kind")
    stock = events.filter(pl.col("symbol") == "SPY").rows()
    # cash-secured put assigned (shares bought), then covered call assigned (shares sold)
    assert ("SPY", "buy", "assignment") in stock and ("SPY", "sell", "assignment") in stock
    assert stock.index(("SPY", "buy", "assignment")) < stock.index(("SPY", "sell", "assignment"))
    tags = res.orders.get_column("tag").to_list()
    assert tags.index("csp") < tags.index("cc")
    assert res.orders.get_column("status").unique().to_list() == ["filled"]
    assert res.daily.get_column("buying_power").min() >= 0


def test_covered_call_buys_shares_then_sells_call() -> None:
    res = _run(CoveredCall(CoveredCallConfig("SPY", call_delta=0.3)), path((30, 0.05)))
    first = res.orders.filter(pl.col("session") == START)
    assert first.get_column("tag").to_list() == ["shares"]
    second = res.orders.filter(pl.col("session") > START).head(1)
    assert second.get_column("tag").to_list() == ["cc"]
    assert res.daily.get_column("collateral").max() == 0.0  # always covered


def test_iron_condor_opens_for_a_credit_with_width_collateral() -> None:
    res = _run(
        IronCondor(
            IronCondorConfig("SPY", short_delta=0.2, wing_width=5, dte=30, dte_min=20, dte_max=45)
        ),
        path((10, 0.01)),
    )
    order = res.orders.row(0, named=True)
    assert order["legs"] == 4 and order["limit_price"] < 0 and order["status"] == "filled"
    assert res.daily.get_column("collateral")[0] == pytest.approx(500.0)
    trades = res.fills.filter(pl.col("order_id") == order["order_id"])
    assert trades.get_column("side").to_list() == ["buy", "sell", "sell", "buy"]


def test_butterfly_is_a_one_two_one_debit() -> None:
    strategy = Butterfly(ButterflyConfig("SPY", wing_width=5, dte=21, dte_min=10, dte_max=35))
    chains = synthetic_chains("SPY", START, 1, spots=np.array([100.0]))
    snap = MarketSnapshot(
        datetime(2023, 1, 2, 15, 45, tzinfo=NEW_YORK),
        START,
        {"SPY": 100.0},
        pl.DataFrame(
            {
                "session": [START],
                "symbol": ["SPY"],
                "open": [100.0],
                "high": [100.0],
                "low": [100.0],
                "close": [100.0],
                "volume": [0.0],
            }
        ),
        {"SPY": chains},
    )
    (intent,) = strategy.decide(snap, Book.build(10_000.0))
    assert [leg.ratio_qty for leg in intent.legs] == [1, 2, 1]
    assert intent.limit_price is not None and intent.limit_price > 0
    strikes = [float(leg.symbol[-8:]) / 1000 for leg in intent.legs]
    assert strikes == [95.0, 100.0, 105.0]
    res = run_options_backtest(strategy, chains)
    assert res.daily.get_column("collateral")[0] == 0.0


@pytest.mark.parametrize(("move", "right"), [(0.10, "C"), (-0.10, "P")])
def test_momentum_options_follow_the_trend(move: float, right: str) -> None:
    cfg = MomentumOptionsConfig("SPY", lookback=5, threshold=0.03, delta=0.5)
    res = _run(MomentumOptions(cfg), path((15, move)))
    first = res.fills.filter(pl.col("kind") == "trade").row(0, named=True)
    assert first["side"] == "buy" and first["symbol"][9] == right
    assert first["position_intent"] == "buy_to_open"


def test_risk_signals_gate_new_positions() -> None:
    chains = synthetic_chains("SPY", START, 1, spots=np.array([100.0]))
    bars = pl.DataFrame(
        {"session": [START], "symbol": ["SPY"], "open": [100.0], "high": [100.0]}
        | {"low": [100.0], "close": [100.0], "volume": [0.0]}
    )
    snap = MarketSnapshot(
        datetime(2023, 1, 2, 15, 45, tzinfo=NEW_YORK), START, {"SPY": 100.0}, bars, {"SPY": chains}
    )
    wheel = Wheel(WheelConfig("SPY", max_drawdown=0.10, max_abs_delta=500.0))
    healthy = Book.build(100_000.0, peak_equity=100_000.0)
    assert [i.tag for i in wheel.decide(snap, healthy)] == ["csp"]
    in_drawdown = Book.build(80_000.0, peak_equity=100_000.0)  # 20% below the peak
    assert in_drawdown.drawdown == pytest.approx(0.2) and wheel.decide(snap, in_drawdown) == []
    long_delta = Book.build(50_000.0, (Position("QQQ", 600, 80.0, 80.0, underlying="QQQ"),))
    assert long_delta.greeks.delta == 600 and wheel.decide(snap, long_delta) == []
    with pytest.raises(ValueError, match="max_drawdown"):
        WheelConfig(max_drawdown=1.5)
