"""Scenario P&L by full revaluation against QuantLib, parity, intrinsic and the pricing library."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
import QuantLib as ql

from strategies.pricing import bs_price
from strategies.stress import (
    OptionPosition,
    Scenario,
    StockPosition,
    StressBook,
    revalue,
    scenario_pnl,
    stress_grid,
)

AS_OF = date(2024, 1, 15)
SPOTS = {"AAA": 100.0, "BBB": 250.0}
RATE = 0.04
YIELDS = {"AAA": 0.01, "BBB": 0.0}


def _random_positions(n: int, seed: int) -> list[OptionPosition | StockPosition]:
    rng = np.random.default_rng(seed)
    out: list[OptionPosition | StockPosition] = []
    for _ in range(n):
        und = str(rng.choice(list(SPOTS)))
        out.append(
            OptionPosition(
                und,
                "C" if rng.random() < 0.5 else "P",
                round(SPOTS[und] * rng.uniform(0.7, 1.3), 1),
                AS_OF + timedelta(days=int(rng.integers(30, 400))),
                qty=float(rng.integers(-10, 11)),
                iv=float(rng.uniform(0.1, 0.8)),
            )
        )
    return [*out, StockPosition("AAA", -300.0), StockPosition("BBB", 50.0)]


def _ql_value(p: OptionPosition, spot: float, vol: float, today: date) -> float:
    """One option's value by QuantLib's AnalyticEuropeanEngine (its payoff once expired)."""
    right = ql.Option.Call if p.right == "C" else ql.Option.Put
    payoff = ql.PlainVanillaPayoff(right, p.strike)
    if p.expiry <= today:
        return payoff(spot)
    ql_today = ql.Date(today.day, today.month, today.year)
    ql.Settings.instance().evaluationDate = ql_today
    dc = ql.Actual365Fixed()
    expiry = ql.Date(p.expiry.day, p.expiry.month, p.expiry.year)
    option = ql.VanillaOption(payoff, ql.EuropeanExercise(expiry))
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(ql_today, YIELDS[p.underlying], dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(ql_today, RATE, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(ql_today, ql.NullCalendar(), vol, dc)),
    )
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return float(option.NPV())


def _ql_pnl(positions: list, s: Scenario) -> tuple[float, float]:
    """(P&L, gross book value) of ``positions`` under ``s``, every leg priced by QuantLib."""
    pnl = gross = 0.0
    later = AS_OF + timedelta(days=int(s.days))
    for p in positions:
        spot = SPOTS[p.underlying if isinstance(p, OptionPosition) else p.symbol]
        shocked = spot * (1.0 + s.spot_shock)
        if isinstance(p, StockPosition):
            pnl += p.qty * (shocked - spot)
            continue
        vol = max(p.iv + s.vol_points / 100 + s.skew_tilt / 100 * np.log(p.strike / spot), 0.0)
        before = _ql_value(p, spot, p.iv, AS_OF)
        pnl += p.qty * p.multiplier * (_ql_value(p, shocked, vol, later) - before)
        gross += abs(p.qty * p.multiplier * before)
    return pnl, gross


def test_grid_points_match_quantlib_analytic_european_engine() -> None:
    """A sample of scenarios (spot, vol, skew, days, one past some expiries) within 1e-12 of the
    book's gross value from QuantLib's independent BSM engine."""
    positions = _random_positions(40, seed=7)
    positions.append(OptionPosition("AAA", "C", 95.0, AS_OF + timedelta(days=10), 3.0, 0.3))
    book = StressBook.build(positions, SPOTS, AS_OF, rate=RATE, dividend_yields=YIELDS)
    scenarios = [
        Scenario(shock, vol, tilt, days)
        for shock, vol, tilt, days in [
            (-0.2, -10.0, 0.0, 0.0),
            (-0.1, 5.0, -20.0, 0.0),
            (0.0, 0.0, 0.0, 7.0),
            (0.05, -5.0, 15.0, 14.0),
            (0.15, 10.0, -30.0, 30.0),  # past the 10-day call's expiry: its payoff
            (-0.3, 25.0, 0.0, 1.0),
        ]
    ]
    ours = scenario_pnl(book, scenarios)
    for s, value in zip(scenarios, ours, strict=True):
        expected, gross = _ql_pnl(positions, s)
        assert value == pytest.approx(expected, abs=1e-12 * gross), s  # measured: 5e-16


def test_grid_equals_the_pricing_library_cell_by_cell() -> None:
    """Each grid cell is units x (bs_price(shocked) - bs_price(now)): our one pricer, 1e-12."""
    positions = _random_positions(25, seed=3)
    book = StressBook.build(positions, SPOTS, AS_OF, rate=RATE, dividend_yields=YIELDS)
    spots, vols = np.linspace(-0.2, 0.2, 5), np.array([-10.0, 0.0, 10.0])
    grid = stress_grid(book, spots, vols, skew_tilt=-10.0, days=5.0)
    s0 = book.spot[book.und]
    now = bs_price(s0, book.strike, book.t, book.rate, book.iv, book.div, book.is_call)
    t_new = np.maximum(book.t - 5.0 / 365.0, 0.0)
    stock_s0 = book.spot[book.stock_und]
    for i, ds in enumerate(spots):
        for j, dv in enumerate(vols):
            vol = np.maximum(book.iv + dv / 100 - 0.1 * np.log(book.strike / s0), 0.0)
            later = bs_price(s0 * (1 + ds), book.strike, t_new, book.rate, vol, book.div,
                             book.is_call)  # fmt: skip
            expected = np.sum(book.units * (later - now)) + np.sum(book.stock_qty * stock_s0 * ds)
            assert grid.pnl[i, j] == pytest.approx(expected, rel=1e-12, abs=1e-9)


def test_zero_shock_is_zero_pnl_and_grid_shape() -> None:
    book = StressBook.build(_random_positions(30, seed=1), SPOTS, AS_OF, rate=RATE)
    grid = stress_grid(book, np.linspace(-0.2, 0.2, 21), np.linspace(-10, 10, 11))
    assert grid.pnl.shape == (21, 11)
    assert grid.pnl[10, 5] == 0.0
    assert scenario_pnl(book, [Scenario()])[0] == 0.0


def test_long_call_pnl_rises_with_spot_at_every_vol() -> None:
    call = OptionPosition("AAA", "C", 105.0, AS_OF + timedelta(days=45), 1.0, 0.3)
    book = StressBook.build([call], SPOTS, AS_OF, rate=RATE)
    grid = stress_grid(book, np.linspace(-0.3, 0.3, 41), np.linspace(-20, 20, 9), days=3)
    by_spot = np.diff(grid.pnl, axis=0)
    assert (by_spot >= 0).all()
    assert (by_spot[20:] > 0).all()  # strictly where the call is not worth ~0 at every vol
    assert (np.diff(grid.pnl[20:], axis=1) > 0).all()  # and rises with vol (long vega)


@pytest.mark.parametrize("rate,dividend", [(0.0, 0.0), (0.05, 0.02)])
def test_synthetic_long_equals_stock_under_any_shock(rate: float, dividend: float) -> None:
    """Long call + short put, same strike and expiry: C - P = S e^{-qT} - K e^{-rT} for any vol,
    so the P&L is the forward's, the stock's exactly when r = q = 0."""
    expiry = AS_OF + timedelta(days=60)
    legs = [
        OptionPosition("AAA", "C", 100.0, expiry, 2.0, 0.25),
        OptionPosition("AAA", "P", 100.0, expiry, -2.0, 0.25),
    ]
    book = StressBook.build(legs, SPOTS, AS_OF, rate=rate, dividend_yields={"AAA": dividend})
    rng = np.random.default_rng(0)
    shocks = [
        Scenario(rng.uniform(-0.4, 0.4), rng.uniform(-20, 40), rng.uniform(-50, 50), d)
        for d in (0, 1, 10, 30, 59)
    ]
    ours = scenario_pnl(book, shocks)
    for s, value in zip(shocks, ours, strict=True):
        t0, t1 = 60 / 365, (60 - s.days) / 365
        s1 = 100.0 * (1 + s.spot_shock)
        forward = (s1 * np.exp(-dividend * t1) - 100.0 * np.exp(-rate * t1)) - (
            100.0 * np.exp(-dividend * t0) - 100.0 * np.exp(-rate * t0)
        )
        assert value == pytest.approx(200.0 * forward, rel=1e-10, abs=1e-9)
        if rate == dividend == 0.0:
            assert value == pytest.approx(200.0 * (s1 - 100.0), rel=1e-10, abs=1e-9)


def test_decay_past_expiry_gives_intrinsic() -> None:
    legs = [
        OptionPosition("AAA", "C", 95.0, AS_OF + timedelta(days=5), 1.0, 0.4),
        OptionPosition("AAA", "P", 110.0, AS_OF + timedelta(days=5), -2.0, 0.4),
    ]
    book = StressBook.build(legs, SPOTS, AS_OF, rate=RATE)
    now = book.units @ bs_price(100.0, book.strike, book.t, RATE, book.iv, 0.0, book.is_call)
    for shock in (-0.2, 0.0, 0.08, 0.3):
        for days in (5, 6, 400):  # on, just after and long after expiry
            s1 = 100.0 * (1 + shock)
            intrinsic = 100.0 * max(s1 - 95.0, 0.0) - 200.0 * max(110.0 - s1, 0.0)
            pnl = scenario_pnl(book, [Scenario(shock, 30.0, -40.0, days)])[0]
            assert pnl == pytest.approx(intrinsic - now, rel=1e-12, abs=1e-9)


def test_skew_tilt_moves_wings_not_the_money() -> None:
    expiry = AS_OF + timedelta(days=30)
    atm = StressBook.build([OptionPosition("AAA", "C", 100.0, expiry, 1.0, 0.2)], SPOTS, AS_OF)
    assert scenario_pnl(atm, [Scenario(skew_tilt=-50.0)])[0] == 0.0
    put = StressBook.build([OptionPosition("AAA", "P", 90.0, expiry, -1.0, 0.2)], SPOTS, AS_OF)
    assert scenario_pnl(put, [Scenario(skew_tilt=-50.0)])[0] < 0  # short OTM put richens


def test_per_underlying_shocks_move_only_their_legs() -> None:
    expiry = AS_OF + timedelta(days=30)
    legs: list[OptionPosition | StockPosition] = [
        OptionPosition("AAA", "C", 100.0, expiry, 1.0, 0.2),
        StockPosition("BBB", 10.0),
    ]
    book = StressBook.build(legs, SPOTS, AS_OF)
    only_bbb = revalue(book, np.array([[1.0, 1.1]]), np.zeros((1, 2)), np.zeros(1), np.zeros(1))
    assert only_bbb[0] == pytest.approx(10.0 * 25.0, rel=1e-12)


def test_bad_inputs_name_the_problem() -> None:
    expiry = AS_OF + timedelta(days=30)
    with pytest.raises(ValueError, match="no spot for underlying"):
        StressBook.build([OptionPosition("ZZZ", "C", 1.0, expiry, 1, 0.2)], SPOTS, AS_OF)
    with pytest.raises(ValueError, match="expired"):
        StressBook.build([OptionPosition("AAA", "C", 1.0, AS_OF - timedelta(1), 1, 0.2)], SPOTS,
                         AS_OF)  # fmt: skip
    with pytest.raises(ValueError, match="iv"):
        StressBook.build([OptionPosition("AAA", "C", 1.0, expiry, 1, float("nan"))], SPOTS, AS_OF)
    with pytest.raises(ValueError, match="spot_shock"):
        Scenario(spot_shock=-1.0)
    with pytest.raises(ValueError, match="days"):
        Scenario(days=-1)


def test_occ_positions_parse() -> None:
    p = OptionPosition.from_occ("O:AAA240216C00105000", qty=-3, iv=0.3)
    assert (p.underlying, p.right, p.strike, p.expiry) == ("AAA", "C", 105.0, date(2024, 2, 16))
    assert p.multiplier == 100
