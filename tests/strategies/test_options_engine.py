"""Options backtest engine on a hand-built three-day chain: every number worked out by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
import pytest

from strategies.accounting import option_requirement
from strategies.backtest.config import EarlyAssignment, FeeSchedule, OptionsBacktestConfig
from strategies.backtest.options_engine import run_options_backtest
from strategies.backtest.synthetic import synthetic_chains
from strategies.base import Param, ParamSpace, Strategy, StrategyError
from strategies.models import (
    AssetClass,
    Book,
    Leg,
    MarketSnapshot,
    OrderIntent,
    OrderType,
    PositionIntent,
    Side,
)
from strategies.options import Wheel, WheelConfig

D1, D2, D3 = date(2024, 3, 11), date(2024, 3, 12), date(2024, 3, 13)
EXPIRY = D3
PUT, CALL = "XYZ240313P00100000", "XYZ240313C00105000"
FEES = FeeSchedule(
    option_commission=0.65,
    option_orf=0.02685,
    option_taf=0.00279,
    sec_rate=0.0000278,
    assignment_fee=0.0,
)
CONFIG = OptionsBacktestConfig(initial_cash=100_000.0, fill_fraction=0.25, fees=FEES)

# (session, contract, strike, right, bid, ask, spot, iv, delta, gamma, vega, theta)
QUOTES = [
    (D1, PUT, 100.0, "P", 1.90, 2.10, 101.0, 0.30, -0.40, 0.10, 0.05, -0.20),
    (D1, CALL, 105.0, "C", 0.40, 0.60, 101.0, 0.28, 0.20, 0.05, 0.03, -0.10),
    (D2, PUT, 100.0, "P", 2.85, 3.05, 99.0, 0.32, -0.60, 0.15, 0.03, -0.30),
    (D2, CALL, 105.0, "C", 0.05, 0.15, 99.0, 0.30, 0.05, 0.02, 0.01, -0.05),
    (D3, PUT, 100.0, "P", 2.97, 3.07, 97.0, 0.35, -1.00, 0.00, 0.00, 0.00),
    (D3, CALL, 105.0, "C", 0.00, 0.05, 97.0, 0.30, 0.00, 0.00, 0.00, 0.00),
]


def hand_chain(rows: list[tuple] = QUOTES) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "contract": c,
                "underlying": "XYZ",
                "session": s,
                "expiry": EXPIRY,
                "strike": k,
                "right": r,
                "bid": b,
                "ask": a,
                "mid": round((b + a) / 2, 4),
                "underlying_price": u,
                "dte": (EXPIRY - s).days,
                "iv": iv,
                "delta": de,
                "gamma": g,
                "vega": v,
                "theta": th,
            }
            for s, c, k, r, b, a, u, iv, de, g, v, th in rows
        ]
    )


def option(symbol: str, side: Side, intent: PositionIntent, ratio: int = 1) -> Leg:
    return Leg(symbol, side, ratio, AssetClass.US_OPTION, intent)


@dataclass(frozen=True, slots=True)
class ScriptConfig:
    script: tuple[tuple[date, tuple[OrderIntent, ...]], ...] = ()


class Scripted(Strategy):
    """Replays fixed intents per session."""

    name = "scripted"
    config_cls = ScriptConfig

    @classmethod
    def param_space(cls) -> ParamSpace:
        return ParamSpace((Param("script", values=((),)),), ScriptConfig)

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        return list(dict(self.config.script).get(snapshot.session, ()))


def scripted(script: dict[date, list[OrderIntent]]) -> Scripted:
    return Scripted(ScriptConfig(tuple((d, tuple(i)) for d, i in script.items())))


@pytest.fixture(scope="module")
def result():
    sell_puts = OrderIntent("scripted", (option(PUT, Side.SELL, PositionIntent.SELL_TO_OPEN),), 2)
    buy_call = OrderIntent("scripted", (option(CALL, Side.BUY, PositionIntent.BUY_TO_OPEN),), 1)
    close_put = OrderIntent("scripted", (option(PUT, Side.BUY, PositionIntent.BUY_TO_CLOSE),), 1)
    strategy = scripted({D1: [sell_puts, buy_call], D2: [close_put]})
    return run_options_backtest(strategy, hand_chain(), CONFIG)


def test_cash_equity_and_collateral_to_the_cent(result) -> None:
    daily = result.daily.to_dicts()
    # Day 1. Sell 2 puts at mid - 0.25 x spread = 2.00 - 0.25 x 0.20 = 1.95 -> +390.00 premium.
    #   fees: commission 2 x 0.65 = 1.30; regulatory 2 x 0.02685 (ORF) + 2 x 0.00279 (TAF)
    #   + 0.0000278 x 390 (SEC) = 0.070122 -> rounded up to 0.08; total 1.38.
    #   Buy 1 call at 0.50 + 0.05 = 0.55 -> -55.00; fees 0.65 + ORF 0.02685 -> 0.03 = 0.68.
    #   cash = 100,000 + 390 - 1.38 - 55 - 0.68 = 100,332.94
    #   equity = cash - 2 x 2.00 x 100 (puts at mid) + 1 x 0.50 x 100 = 99,982.94
    #   collateral = 2 cash-secured puts x 100 strike x 100 = 20,000 (the long call adds none)
    assert daily[0]["cash"] == pytest.approx(100_332.94, abs=1e-9)
    assert daily[0]["equity"] == pytest.approx(99_982.94, abs=1e-9)
    assert daily[0]["collateral"] == pytest.approx(20_000.0)
    assert daily[0]["buying_power"] == pytest.approx(80_332.94, abs=1e-9)
    # Day 2. Buy back 1 put at 2.95 + 0.05 = 3.00 -> -300.00; fees 0.65 + 0.03 = 0.68.
    #   cash = 100,332.94 - 300.68 = 100,032.26; equity = cash - 295.00 + 10.00 = 99,747.26
    assert daily[1]["cash"] == pytest.approx(100_032.26, abs=1e-9)
    assert daily[1]["equity"] == pytest.approx(99_747.26, abs=1e-9)
    assert daily[1]["collateral"] == pytest.approx(10_000.0)
    # Day 3 close, spot 97. The short 100 put is in the money by 3.00 >= 0.01: assigned,
    #   100 shares bought at 100 -> cash 90,032.26; shares marked 97 x 100 = 9,700.
    #   The 105 call is out of the money and expires. equity = 99,732.26, collateral 0.
    assert daily[2]["cash"] == pytest.approx(90_032.26, abs=1e-9)
    assert daily[2]["equity"] == pytest.approx(99_732.26, abs=1e-9)
    assert daily[2]["collateral"] == 0.0 and daily[2]["n_positions"] == 1
    assert result.positions.filter(pl.col("session") == D3).select(
        "symbol", "qty", "avg_price", "mark"
    ).rows() == [("XYZ", 100.0, 100.0, 97.0)]


def test_fills_fees_and_assignment(result) -> None:
    fills = result.fills.select("session", "symbol", "side", "qty", "price", "fees", "kind")
    assert fills.rows() == [
        (D1, PUT, "sell", 2.0, pytest.approx(1.95), pytest.approx(1.38), "trade"),
        (D1, CALL, "buy", 1.0, pytest.approx(0.55), pytest.approx(0.68), "trade"),
        (D2, PUT, "buy", 1.0, pytest.approx(3.00), pytest.approx(0.68), "trade"),
        (D3, PUT, "buy", 1.0, pytest.approx(3.00), 0.0, "assignment"),
        (D3, "XYZ", "buy", 100.0, 100.0, 0.0, "assignment"),
        (D3, CALL, "sell", 1.0, 0.0, 0.0, "expiry"),
    ]
    assert result.fills.get_column("fees").sum() == pytest.approx(2.74)
    assert result.orders.get_column("status").to_list() == ["filled"] * 3


def test_greeks_attribution_by_hand(result) -> None:
    att = result.attribution.to_dicts()
    # Day 1: trading = puts -2 x 100 x (2.00 - 1.95) + call 100 x (0.50 - 0.55) = -15.00
    assert att[0]["trading"] == pytest.approx(-15.0) and att[0]["fees"] == pytest.approx(-2.06)
    assert att[0]["total"] == pytest.approx(-17.06)
    # Day 2 (dS = -2, dt = 1 day), Greeks of day 1; units = qty x 100:
    #   put  (-200): delta -200 x -0.40 x -2 = -160; gamma -200 x 0.5 x 0.10 x 4 = -40;
    #                theta -200 x -0.20 = +40; vega -200 x 0.05 x (0.32 - 0.30) x 100 = -20;
    #                move -200 x (2.95 - 2.00) = -190 -> residual -10
    #   call (+100): delta 100 x 0.20 x -2 = -40; gamma 100 x 0.5 x 0.05 x 4 = +10;
    #                theta -10; vega 100 x 0.03 x 2 = +6; move 100 x (0.10 - 0.50) = -40
    #                -> residual -6
    #   close 1 put: trading 100 x (2.95 - 3.00) = -5; fees -0.68
    expected2 = {
        "delta": -200.0,
        "gamma": -30.0,
        "theta": 30.0,
        "vega": -14.0,
        "residual": -16.0,
        "trading": -5.0,
        "fees": -0.68,
        "total": -235.68,
    }
    for name, value in expected2.items():
        assert att[1][name] == pytest.approx(value, abs=1e-9), name
    # Day 3 (dS = -2), Greeks of day 2:
    #   put  (-100): delta -100 x -0.60 x -2 = -120; gamma -100 x 0.5 x 0.15 x 4 = -30;
    #                theta +30; vega -100 x 0.03 x 3 = -9; move -100 x (3.02 - 2.95) = -7
    #                -> residual +122
    #   call (+100): delta -10; gamma +4; theta -5; vega 0; move 100 x (0.025 - 0.10) = -7.5
    #                -> residual +3.5
    #   settlement: put assigned at intrinsic 3.00 vs mark 3.02 -> -100 x (3.00 - 3.02) = +2;
    #               call expires: 100 x (0 - 0.025) = -2.5
    expected3 = {
        "delta": -130.0,
        "gamma": -26.0,
        "theta": 25.0,
        "vega": -9.0,
        "residual": 125.5,
        "settlement": -0.5,
        "total": -15.0,
    }
    for name, value in expected3.items():
        assert att[2][name] == pytest.approx(value, abs=1e-9), name
    equity = np.concatenate(([CONFIG.initial_cash], result.daily.get_column("equity").to_numpy()))
    np.testing.assert_allclose(np.diff(equity), result.attribution.get_column("total"), atol=1e-9)


def test_rejections_are_recorded_not_fatal() -> None:
    too_many = OrderIntent("scripted", (option(PUT, Side.SELL, PositionIntent.SELL_TO_OPEN),), 20)
    naked = OrderIntent("scripted", (option(CALL, Side.SELL, PositionIntent.SELL_TO_OPEN),), 1)
    bad_close = OrderIntent("scripted", (option(PUT, Side.BUY, PositionIntent.BUY_TO_CLOSE),), 1)
    tight = OrderIntent(
        "scripted", (option(PUT, Side.SELL, PositionIntent.SELL_TO_OPEN),), 1, OrderType.LIMIT, 2.05
    )
    unknown = OrderIntent(
        "scripted", (option("XYZ240313P00050000", Side.SELL, PositionIntent.SELL_TO_OPEN),), 1
    )
    strategy = scripted({D1: [too_many, naked, bad_close, tight, unknown]})
    config = OptionsBacktestConfig(initial_cash=150_000.0, fill_fraction=0.25, fees=FEES)
    res = run_options_backtest(strategy, hand_chain(), config)
    messages = res.orders.get_column("message").to_list()
    assert res.orders.get_column("status").to_list() == ["rejected"] * 5
    assert "buying power" in messages[0] and "uncovered short call" in messages[1]
    assert "0 held" in messages[2] and "worse than limit" in messages[3]
    assert "no quote" in messages[4]
    assert res.daily.get_column("cash").to_list() == [150_000.0] * 3


def test_mleg_spread_collateral_is_its_width() -> None:
    rows = [
        *QUOTES,
        *[
            (s, "XYZ240313P00095000", 95.0, "P", 0.5, 0.7, u, 0.3, -0.1, 0.02, 0.02, -0.05)
            for s, _, _, _, _, _, u, *_ in QUOTES[::2]
        ],
    ]
    spread = OrderIntent(
        "scripted",
        (
            option("XYZ240313P00095000", Side.BUY, PositionIntent.BUY_TO_OPEN),
            option(PUT, Side.SELL, PositionIntent.SELL_TO_OPEN),
        ),
        3,
        OrderType.LIMIT,
        -1.0,
    )
    res = run_options_backtest(scripted({D1: [spread]}), hand_chain(rows), CONFIG)
    # net = buy 0.60 + 0.05 - sell (2.00 - 0.05) = -1.30 credit <= -1.00 limit: filled
    assert res.orders.get_column("status").to_list() == ["filled"]
    # max loss of 3 put spreads 100/95 = 3 x 5 x 100 = 1,500
    assert res.daily.get_column("collateral")[0] == pytest.approx(1_500.0)
    trades = res.fills.filter(pl.col("kind") == "trade").get_column("price").to_list()
    assert trades == [pytest.approx(0.65), pytest.approx(1.95)]


def test_requirement_rules() -> None:
    assert option_requirement([(100.0, False, -1.0)], 0.0) == 10_000.0  # cash-secured put
    assert option_requirement([(105.0, True, -1.0)], 100.0) == 0.0  # covered call
    assert option_requirement([(105.0, True, -2.0)], 100.0) == float("inf")  # one naked
    condor = [(90.0, False, 1.0), (95.0, False, -1.0), (105.0, True, -1.0), (115.0, True, 1.0)]
    assert option_requirement(condor, 0.0) == 1_000.0  # the wider (call) side
    fly = [(95.0, True, 1.0), (100.0, True, -2.0), (105.0, True, 1.0)]
    assert option_requirement(fly, 0.0) == 0.0


def _covered_call_chain() -> pl.DataFrame:
    call = "XYZ240315C00095000"
    rows = [(D1, call, 95.0, "C", 5.05, 5.15, 100.0), (D2, call, 95.0, "C", 4.55, 4.65, 99.5)]
    return pl.DataFrame(
        [
            {
                "contract": c,
                "underlying": "XYZ",
                "session": s,
                "expiry": date(2024, 3, 15),
                "strike": k,
                "right": r,
                "bid": b,
                "ask": a,
                "mid": (b + a) / 2,
                "underlying_price": u,
                "dte": (date(2024, 3, 15) - s).days,
                "iv": 0.2,
                "delta": 0.95,
                "gamma": 0.01,
                "vega": 0.01,
                "theta": -0.01,
            }
            for s, c, k, r, b, a, u in rows
        ]
    )


@pytest.mark.parametrize("enabled", [False, True])
def test_early_assignment_before_ex_dividend(enabled: bool) -> None:
    shares = OrderIntent("scripted", (Leg("XYZ", Side.BUY, 1, AssetClass.US_EQUITY),), 100)
    call = OrderIntent(
        "scripted", (option("XYZ240315C00095000", Side.SELL, PositionIntent.SELL_TO_OPEN),), 1
    )
    config = OptionsBacktestConfig(
        initial_cash=20_000.0,
        fill_fraction=0.0,
        fees=FeeSchedule(0, 0, 0, 0, 0, 0, 0, 0),
        early_assignment=EarlyAssignment(enabled=enabled),
        dividends={"XYZ": {D2: 0.50}},
    )
    res = run_options_backtest(scripted({D1: [shares, call]}), _covered_call_chain(), config)
    cash = res.daily.get_column("cash").to_list()
    if enabled:
        # extrinsic 5.10 - 5.00 = 0.10 < 0.50 dividend: assigned at the D1 close, shares called
        # away at 95: cash = 20,000 - 10,000 + 510 + 9,500 = 20,010; no dividend on D2
        assert cash == [pytest.approx(20_010.0), pytest.approx(20_010.0)]
        assert "early_assignment" in res.fills.get_column("kind").to_list()
    else:
        # kept: D2 pays 100 x 0.50 = 50 on the ex-date
        assert cash == [pytest.approx(10_510.0), pytest.approx(10_560.0)]
        assert res.attribution.get_column("dividends").to_list() == [0.0, 50.0]


class Exploding(Scripted):
    name = "exploding"

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        if snapshot.session == D2:
            raise ZeroDivisionError("boom")
        return []


def test_strategy_error_names_strategy_and_session() -> None:
    with pytest.raises(
        StrategyError, match="'exploding' failed on 2024-03-12: ZeroDivisionError"
    ) as info:
        run_options_backtest(Exploding(), hand_chain(), CONFIG)
    assert isinstance(info.value.cause, ZeroDivisionError) and info.value.session == D2


def test_bad_ranges_and_missing_sessions() -> None:
    with pytest.raises(ValueError, match="empty date range"):
        run_options_backtest(scripted({}), hand_chain(), CONFIG, start=D3, end=D1)
    with pytest.raises(ValueError, match="no chain sessions"):
        run_options_backtest(
            scripted({}), hand_chain(), CONFIG, start=date(2024, 3, 1), end=date(2024, 3, 8)
        )
    with pytest.raises(ValueError, match="misses 1 sessions"):
        run_options_backtest(
            scripted({}),
            hand_chain(QUOTES[:2] + QUOTES[4:]),
            CONFIG,
            expected_sessions=[D1, D2, D3],
        )
    with pytest.raises(ValueError, match="fill_fraction"):
        OptionsBacktestConfig(fill_fraction=1.5)
    with pytest.raises(ValueError, match="option_orf"):
        FeeSchedule(option_orf=-1.0)


def test_wheel_year_is_consistent() -> None:
    """A year of the wheel on a synthetic chain: equity identity and no negative buying power."""
    chains = synthetic_chains("SPY", date(2021, 1, 4), 252, seed=1)
    res = run_options_backtest(Wheel(WheelConfig("SPY", profit_target=0.5)), chains)
    equity = np.concatenate(([100_000.0], res.daily.get_column("equity").to_numpy()))
    np.testing.assert_allclose(np.diff(equity), res.attribution.get_column("total"), atol=1e-7)
    assert float(res.daily.get_column("buying_power").min()) >= 0  # type: ignore[arg-type]
    assert res.orders.get_column("status").unique().to_list() == ["filled"]
    shuffled = run_options_backtest(
        Wheel(WheelConfig("SPY", profit_target=0.5)),
        chains.sample(fraction=1.0, shuffle=True, seed=3),
    )
    assert shuffled.daily.equals(res.daily)  # input order does not matter
