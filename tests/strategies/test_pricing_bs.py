"""Black-Scholes-Merton prices and Greeks against textbooks, QuantLib and finite differences."""

from __future__ import annotations

import doctest
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import QuantLib as ql
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.pricing import (
    Greeks,
    IVStatus,
    bs_greeks,
    bs_price,
    no_arbitrage_bounds,
    no_arbitrage_status,
    per_day,
    per_vol_point,
)

# --- published values ---------------------------------------------------------------------------


def test_hull_call_and_put() -> None:
    # Hull, Options, Futures and Other Derivatives, Black-Scholes-Merton example: 4.76 / 0.81.
    assert bs_price(42.0, 40.0, 0.5, 0.10, 0.20) == pytest.approx(4.76, abs=0.005)
    assert bs_price(42.0, 40.0, 0.5, 0.10, 0.20, is_call=False) == pytest.approx(0.81, abs=0.005)


def test_hull_greeks_example() -> None:
    # Hull's running Greek example: S=49, K=50, r=5%, sigma=20%, 20 weeks (0.3846 years).
    g = bs_greeks(49.0, 50.0, 0.3846, 0.05, 0.20)
    assert g.delta == pytest.approx(0.522, abs=0.0005)
    assert g.gamma == pytest.approx(0.066, abs=0.0005)
    assert g.vega == pytest.approx(12.1, abs=0.05)  # per 1.00 of vol
    assert g.theta == pytest.approx(-4.31, abs=0.005)  # per year
    assert g.rho == pytest.approx(8.91, abs=0.005)  # per 1.00 of rate
    assert per_day(g.theta) == pytest.approx(-0.0118, abs=0.00005)
    assert per_vol_point(g.vega) == pytest.approx(0.121, abs=0.0005)


@pytest.mark.parametrize(
    ("S", "K", "T", "r", "q", "sigma", "is_call", "expected"),
    [
        (60.0, 65.0, 0.25, 0.08, 0.0, 0.30, True, 2.1334),  # Haug 1.1.1, Black-Scholes call
        (100.0, 95.0, 0.5, 0.10, 0.05, 0.20, False, 2.4648),  # Haug 1.1.2, Merton index put
        (19.0, 19.0, 0.75, 0.10, 0.10, 0.28, True, 1.7011),  # Haug 1.1.3, Black-76 (q = r)
        (19.0, 19.0, 0.75, 0.10, 0.10, 0.28, False, 1.7011),
    ],
)
def test_haug_prices(S, K, T, r, q, sigma, is_call, expected) -> None:
    assert bs_price(S, K, T, r, sigma, q, is_call) == pytest.approx(expected, abs=5e-5)


def test_haug_greeks() -> None:
    # Haug, The Complete Guide to Option Pricing Formulas, 2nd ed., section 2.1 examples
    # (generalized BSM with cost of carry b = r - q).
    futures = bs_greeks(105.0, 100.0, 0.5, 0.10, 0.36, q=0.10, is_call=["C", "P"])
    np.testing.assert_allclose(futures.delta, [0.5946, -0.3566], atol=5e-5)
    assert bs_greeks(55.0, 60.0, 0.75, 0.10, 0.30).gamma == pytest.approx(0.0278, abs=5e-5)
    put = bs_greeks(430.0, 405.0, 0.0833, 0.07, 0.20, q=0.05, is_call=False)
    assert put.theta == pytest.approx(-31.1924, abs=5e-5)
    assert bs_greeks(72.0, 75.0, 1.0, 0.09, 0.19).rho == pytest.approx(38.7325, abs=5e-5)


# --- identities ---------------------------------------------------------------------------------


def _random_inputs(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    S = rng.uniform(5.0, 500.0, n)
    return {
        "S": S,
        "K": S * np.exp(rng.uniform(-0.8, 0.8, n)),
        "T": np.exp(rng.uniform(np.log(1 / 8760), np.log(5.0), n)),
        "r": rng.uniform(-0.01, 0.08, n),
        "sigma": np.exp(rng.uniform(np.log(0.01), np.log(3.0), n)),
        "q": rng.uniform(0.0, 0.06, n),
    }


def test_put_call_parity_random_grid() -> None:
    x = _random_inputs(20_000, seed=1)
    call = bs_price(**x, is_call=True)
    put = bs_price(**x, is_call=False)
    forward_gap = x["S"] * np.exp(-x["q"] * x["T"]) - x["K"] * np.exp(-x["r"] * x["T"])
    assert np.max(np.abs(call - put - forward_gap) / x["S"]) < 1e-12


def test_no_arbitrage_bounds() -> None:
    # The bounds and their tolerance are the library's (the implied-vol solver's own rule), not
    # recomputed with np.exp: numpy's AVX-512 exp and glibc's differ by an ulp (issue 10).
    x = _random_inputs(20_000, seed=2)
    market = {k: x[k] for k in ("S", "K", "T", "r", "q")}
    within = {IVStatus.OK, IVStatus.AT_INTRINSIC, IVStatus.AT_UPPER_BOUND}
    for is_call in (True, False):
        price = bs_price(**x, is_call=is_call)
        status = no_arbitrage_status(price, **market, is_call=is_call)
        lower = no_arbitrage_bounds(**market, is_call=is_call)[0]
        underflow = (price == 0.0) & (lower == 0.0)  # far out of the money: rounds to zero
        assert set(np.unique(status[~underflow])) <= within
        assert np.all(status[underflow] == IVStatus.NONPOSITIVE_INPUT)


def test_greeks_match_central_differences() -> None:
    rng = np.random.default_rng(3)
    n = 400
    S = rng.uniform(50, 150, n)
    args = {
        "K": S * rng.uniform(0.8, 1.25, n),
        "T": rng.uniform(0.05, 2.0, n),
        "r": rng.uniform(0.0, 0.06, n),
        "q": rng.uniform(0.0, 0.04, n),
        "is_call": rng.random(n) < 0.5,
    }
    sigma = rng.uniform(0.1, 0.6, n)
    g = bs_greeks(S, sigma=sigma, **args)
    hd, hs, hv, hr, ht = 1e-5 * S, 2e-4 * S, 1e-4, 1e-5, 1e-5

    def price(s=S, v=sigma, **kw):
        return bs_price(s, sigma=v, **{**args, **kw})

    np.testing.assert_allclose(g.delta, (price(s=S + hd) - price(s=S - hd)) / (2 * hd), atol=1e-8)
    gamma_fd = (price(s=S + hs) - 2 * price() + price(s=S - hs)) / hs**2
    np.testing.assert_allclose(g.gamma, gamma_fd, rtol=1e-4, atol=1e-7)
    vega_fd = (price(v=sigma + hr) - price(v=sigma - hr)) / (2 * hr)
    np.testing.assert_allclose(g.vega, vega_fd, rtol=1e-6, atol=1e-6)
    rho_fd = (price(r=args["r"] + hr) - price(r=args["r"] - hr)) / (2 * hr)
    np.testing.assert_allclose(g.rho, rho_fd, rtol=1e-6, atol=1e-6)
    theta_fd = -(price(T=args["T"] + ht) - price(T=args["T"] - ht)) / (2 * ht)
    np.testing.assert_allclose(g.theta, theta_fd, rtol=1e-5, atol=1e-5)
    up, dn = bs_greeks(S, sigma=sigma + hv, **args), bs_greeks(S, sigma=sigma - hv, **args)
    np.testing.assert_allclose(g.vanna, (up.delta - dn.delta) / (2 * hv), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g.volga, (up.vega - dn.vega) / (2 * hv), rtol=1e-5, atol=1e-5)


# --- QuantLib -----------------------------------------------------------------------------------


def _quantlib(S, K, days, r, q, sigma, is_call):
    today = ql.Date(15, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, K),
        ql.EuropeanExercise(today + int(days)),
    )
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(S)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), sigma, dc)),
    )
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return [
        option.NPV(),
        option.delta(),
        option.gamma(),
        option.vega(),
        option.theta(),
        option.rho(),
    ]


def test_matches_quantlib_analytic_engine() -> None:
    rng = np.random.default_rng(4)
    n = 300
    S = rng.uniform(10, 400, n)
    K = S * rng.uniform(0.6, 1.5, n)
    days = rng.integers(1, 1500, n)
    r, q = rng.uniform(-0.01, 0.08, n), rng.uniform(0.0, 0.05, n)
    sigma, is_call = rng.uniform(0.05, 1.5, n), rng.random(n) < 0.5
    ref = np.array([_quantlib(*row) for row in zip(S, K, days, r, q, sigma, is_call, strict=True)])
    T = days / 365.0
    ours = bs_greeks(S, K, T, r, sigma, q, is_call)
    price = bs_price(S, K, T, r, sigma, q, is_call)
    assert np.all(np.abs(price - ref[:, 0]) <= 1e-10 * np.abs(ref[:, 0]) + 1e-12 * S)
    for col, name in enumerate(["delta", "gamma", "vega", "theta", "rho"], start=1):
        gap = np.abs(ours[name] - ref[:, col])
        assert np.all(gap <= 1e-9 * np.abs(ref[:, col]) + 1e-10 * S), name


# --- edges and API ------------------------------------------------------------------------------


def test_expiry_and_zero_vol_give_intrinsic_without_nans() -> None:
    K = np.array([90.0, 100.0, 110.0])
    np.testing.assert_array_equal(bs_price(100.0, K, 0.0, 0.05, 0.2), [10.0, 0.0, 0.0])
    np.testing.assert_array_equal(bs_price(100.0, K, 0.0, 0.05, 0.2, is_call=False), [0, 0, 10])
    disc_gap = 100.0 * math.exp(-0.02) - K * math.exp(-0.05)
    np.testing.assert_allclose(bs_price(100.0, K, 1.0, 0.05, 0.0, 0.02), np.maximum(disc_gap, 0))
    g = bs_greeks(100.0, K, 0.0, 0.05, 0.2)
    for values in g.as_dict().values():
        assert np.all(np.isfinite(values))
    np.testing.assert_array_equal(g.delta, [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(g.gamma, 0.0)
    tiny = bs_price(100.0, K, 1e-12, 0.05, 0.2)  # continuity towards expiry
    np.testing.assert_allclose(tiny, [10.0, 0.0, 0.0], atol=1e-5)


def test_invalid_inputs_give_nan() -> None:
    bad = bs_price(
        [-1.0, 100.0, 100.0, 100.0, np.nan],
        [100.0, 0.0, 100.0, 100.0, 100.0],
        [1.0, 1.0, -1.0, 1.0, 1.0],
        0.05,
        [0.2, 0.2, 0.2, -0.2, 0.2],
    )
    assert np.all(np.isnan(bad))
    assert np.isnan(bs_greeks(100.0, 100.0, 1.0, np.inf, 0.2).delta)


def test_scalars_broadcasting_and_series_inputs() -> None:
    assert isinstance(bs_price(100.0, 100.0, 1.0, 0.05, 0.2), float)
    grid = bs_price(100.0, np.array([[90.0], [110.0]]), np.array([0.5, 1.0, 2.0]), 0.05, 0.2)
    assert grid.shape == (2, 3)
    flags = pl.Series(["C", "P", "call", "put"])
    prices = bs_price(pd.Series([100.0] * 4), 100.0, 1.0, 0.05, 0.2, is_call=flags)
    np.testing.assert_allclose(prices[0], prices[2])
    np.testing.assert_allclose(prices[1], prices[3])
    assert isinstance(bs_greeks(100.0, 100.0, 1.0, 0.05, 0.2), Greeks)
    with pytest.raises(ValueError, match="straddle"):
        bs_price(100.0, 100.0, 1.0, 0.05, 0.2, is_call="straddle")


@settings(max_examples=200, deadline=None)
@given(
    S=st.floats(1.0, 1000.0),
    m=st.floats(0.5, 2.0),
    T=st.floats(1e-4, 5.0),
    sigma=st.floats(0.01, 3.0),
    r=st.floats(-0.02, 0.1),
    q=st.floats(0.0, 0.1),
)
def test_price_increases_with_vol(S, m, T, sigma, r, q) -> None:
    lo, hi = bs_price(S, S * m, T, r, [sigma, sigma * 1.01], q)
    assert hi >= lo - 1e-12 * S
    assert bs_greeks(S, S * m, T, r, sigma, q).vega >= 0.0


def test_pricing_library_imports_nothing_outside_strategies() -> None:
    code = (
        "import sys, strategies.pricing, strategies.occ;"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    root = Path(__file__).resolve().parents[2]
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    ).stdout.split()
    banned = {"dagster", "live", "research", "alpaca_improved_pipelines", "QuantLib", "mlflow"}
    assert not banned & set(loaded)


def test_docstring_examples() -> None:
    import strategies.pricing as pricing
    from strategies.pricing import black_scholes, bounds, implied_volatility

    for module in (pricing, black_scholes, bounds, implied_volatility):
        assert doctest.testmod(module).failed == 0, module.__name__
