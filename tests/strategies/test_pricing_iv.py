"""Implied volatility: round trips on a dense grid, bounds and statuses, independent references."""

from __future__ import annotations

import math

import numpy as np
import py_lets_be_rational as lbr
import pytest
import QuantLib as ql
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from strategies.pricing import (
    BOUND_RTOL,
    IVStatus,
    bs_greeks,
    bs_price,
    implied_vol,
    iv_and_greeks,
    no_arbitrage_bounds,
    no_arbitrage_status,
)

S0, R, Q = 100.0, 0.03, 0.01
EPS = np.finfo(np.float64).eps
# Bounds and the boundary rule come from the library (the solver's own numba code): recomputed
# here with np.exp they would differ by an ulp wherever numpy's SIMD exp is not glibc's.


@pytest.fixture(scope="module")
def grid():
    """Moneyness 0.5-2 x expiry 1 hour-5 years x vol 1%-500% x call/put (146,400 options)."""
    m = np.exp(np.linspace(np.log(0.5), np.log(2.0), 61))
    T = np.geomspace(1.0 / (365 * 24), 5.0, 40)
    vol = np.geomspace(0.01, 5.0, 30)
    M, TT, V, C = np.meshgrid(m, T, vol, [True, False], indexing="ij")
    K = S0 * M
    price = bs_price(S0, K, TT, R, V, Q, C)
    iv, status = implied_vol(price, S0, K, TT, R, Q, C, return_status=True)
    return {"K": K, "T": TT, "sigma": V, "call": C, "price": price, "iv": iv, "status": status}


def test_round_trip_is_exact_wherever_the_price_is_quotable(grid) -> None:
    g = grid
    lower, upper = no_arbitrage_bounds(S0, g["K"], g["T"], R, Q, g["call"])
    vega = bs_greeks(S0, g["K"], g["T"], R, g["sigma"], Q, g["call"]).vega
    # Quotable: at least 1e-10*S away from both bounds, and one ulp of the price moves the
    # volatility by at most 1e-12 (otherwise the double itself cannot pin sigma to 1e-10).
    quotable = (
        (g["price"] - lower > 1e-10 * S0)
        & (upper - g["price"] > 1e-10 * S0)
        & (np.spacing(g["price"]) <= 1e-12 * vega)
    )
    assert quotable.mean() > 0.4  # the grid is deliberately extreme; still most of it is live
    assert np.all(g["status"][quotable] == IVStatus.OK)
    assert np.max(np.abs(g["iv"] - g["sigma"])[quotable]) <= 1e-10


def test_every_price_inside_the_bounds_converges(grid) -> None:
    g = grid
    where = no_arbitrage_status(g["price"], S0, g["K"], g["T"], R, Q, g["call"])
    inside = where == IVStatus.OK
    assert np.all(g["status"][inside] == IVStatus.OK)
    np.testing.assert_array_equal(g["status"][~inside], where[~inside])  # one rule
    at_intrinsic = where == IVStatus.AT_INTRINSIC  # deep in the money, short, low vol
    assert at_intrinsic.sum() > 30_000 and np.all(g["iv"][at_intrinsic] == 0.0)
    # every volatility reprices its price to within the boundary tolerance (8 x 2**-52 of the scale)
    solved = inside | at_intrinsic
    repriced = bs_price(S0, g["K"], g["T"], R, g["iv"], Q, g["call"])
    residual = np.abs(repriced - g["price"])[solved] / np.maximum(S0, g["K"][solved])
    assert residual.max() <= BOUND_RTOL
    assert np.all(np.isnan(g["iv"][~solved]))
    assert set(np.unique(g["status"][~solved])) == {IVStatus.NONPOSITIVE_INPUT}  # underflow


def test_prices_within_a_few_ulps_of_a_bound_are_at_it_on_every_cpu() -> None:
    # Issue 10: deep in the money, vol 1%, T from 1 hour to a week. The BSM price is the
    # intrinsic value to the last bit, and numpy's exp (AVX-512 or glibc, as dispatched) and
    # numba's (glibc, FMA or not) put that value an ulp apart (61 of these 400 on AVX-512).
    # Every such computation, and any price within BOUND_RTOL of it, is AT_INTRINSIC with
    # volatility 0.0: never BELOW_INTRINSIC on one CPU and "solved" on another.
    K = S0 * np.exp(np.linspace(np.log(0.5), np.log(0.9), 400))
    T, call = np.geomspace(1 / 8760, 0.02, K.size)[::-1], np.arange(K.size) % 2 == 0
    K = np.where(call, K, S0 * S0 / K)  # puts as deep in the money as the calls
    fwd_s, fwd_k = S0 * np.exp(-Q * T), K * np.exp(-R * T)  # numpy: SIMD exp where available
    intrinsic, upper = np.where(call, fwd_s - fwd_k, fwd_k - fwd_s), np.where(call, fwd_s, fwd_k)
    ulp = EPS * np.maximum(fwd_s, fwd_k)  # BOUND_RTOL is 8 of these

    def solve(price):
        iv, status = implied_vol(price, S0, K, T, R, Q, call, return_status=True)
        np.testing.assert_array_equal(status, no_arbitrage_status(price, S0, K, T, R, Q, call))
        return iv, status

    bsm = bs_price(S0, K, T, R, 0.01, Q, call)
    assert np.array_equal(bsm, no_arbitrage_bounds(S0, K, T, R, Q, call)[0])
    for price in (bsm, *(intrinsic + n * ulp for n in (-4, -1, 0, 1, 4))):
        iv, status = solve(price)
        assert np.all(status == IVStatus.AT_INTRINSIC) and np.all(iv == 0.0)
    for n in (-4, 0, 4):
        iv, status = solve(upper + n * ulp)
        assert np.all(status == IVStatus.AT_UPPER_BOUND) and np.all(np.isnan(iv))
    # beyond the tolerance the bounds are firm, and an exact zero bound has no tolerance at all
    assert np.all(solve(intrinsic - 32 * ulp)[1] == IVStatus.BELOW_INTRINSIC)
    assert np.all(solve(upper + 32 * ulp)[1] == IVStatus.ABOVE_UPPER_BOUND)
    assert np.all(solve(intrinsic + 1e-9 * S0)[1] == IVStatus.OK)
    far_otm, status = implied_vol(1e-200, S0, 2 * S0, 0.1, R, Q, True, return_status=True)
    assert status == IVStatus.OK and 0.0 < far_otm < 10.0


def test_statuses_outside_bounds_and_bad_inputs() -> None:
    S, K, T, r, q = 100.0, 90.0, 0.5, 0.05, 0.02
    lower, upper = no_arbitrage_bounds(S, K, T, r, q, True)
    cases = [
        (lower - 0.01, S, K, T, True, IVStatus.BELOW_INTRINSIC),
        (float(lower), S, K, T, True, IVStatus.AT_INTRINSIC),  # at the bound: volatility 0.0
        (float(upper), S, K, T, True, IVStatus.AT_UPPER_BOUND),
        (upper + 0.01, S, K, T, True, IVStatus.ABOVE_UPPER_BOUND),
        (K * math.exp(-r * T) + 1.0, S, K, T, False, IVStatus.ABOVE_UPPER_BOUND),
        (0.0, S, K, T, True, IVStatus.NONPOSITIVE_INPUT),
        (-1.0, S, K, T, True, IVStatus.NONPOSITIVE_INPUT),
        (5.0, 0.0, K, T, True, IVStatus.NONPOSITIVE_INPUT),
        (5.0, S, -K, T, True, IVStatus.NONPOSITIVE_INPUT),
        (5.0, S, K, 0.0, True, IVStatus.NONPOSITIVE_INPUT),
        (np.nan, S, K, T, True, IVStatus.NON_FINITE_INPUT),
        (5.0, S, K, np.inf, True, IVStatus.NON_FINITE_INPUT),
    ]
    price, s, k, t, call, expected = (np.array(col) for col in zip(*cases, strict=True))
    iv, status = implied_vol(price, s, k, t, r, q, call, return_status=True)
    assert status.dtype == np.int8
    assert [IVStatus(x) for x in status] == list(expected)
    assert iv[1] == 0.0 and np.all(np.isnan(np.delete(iv, 1)))


def test_scalar_call_returns_float_and_status() -> None:
    price = bs_price(100.0, 105.0, 0.25, 0.04, 0.3, 0.01, is_call=False)
    iv, status = implied_vol(price, 100.0, 105.0, 0.25, 0.04, 0.01, "P", return_status=True)
    assert isinstance(iv, float) and iv == pytest.approx(0.3, abs=1e-13)
    assert status == IVStatus.OK


def test_iv_and_greeks_matches_separate_calls() -> None:
    rng = np.random.default_rng(5)
    n = 5000
    K = S0 * rng.uniform(0.7, 1.3, n)
    T, sigma = rng.uniform(1 / 365, 2.0, n), rng.uniform(0.05, 1.5, n)
    call = rng.random(n) < 0.5
    price = bs_price(S0, K, T, R, sigma, Q, call)
    price[:10] = -1.0  # a few invalid rows
    out = iv_and_greeks(price, S0, K, T, R, Q, call)
    iv, status = implied_vol(price, S0, K, T, R, Q, call, return_status=True)
    np.testing.assert_allclose(out.iv, iv, rtol=1e-13)  # same solver, separately compiled
    np.testing.assert_array_equal(out.status, status)
    ok = status == IVStatus.OK
    ref = bs_greeks(S0, K[ok], T[ok], R, iv[ok], Q, call[ok])
    for name in ("delta", "gamma", "vega", "theta", "rho"):
        np.testing.assert_allclose(out.as_dict()[name][ok], ref[name], rtol=1e-14, atol=1e-15)
        assert np.all(np.isnan(out.as_dict()[name][~ok]))


def test_matches_lets_be_rational_reference() -> None:
    # py_lets_be_rational is Jaeckel's reference algorithm (the engine py_vollib_vectorized
    # wraps), accurate to machine precision; it runs as plain Python here, hence the sample.
    rng = np.random.default_rng(6)
    n = 400
    K = S0 * rng.uniform(0.7, 1.3, n)
    T, sigma = rng.uniform(1 / 365, 2.0, n), rng.uniform(0.05, 1.5, n)
    r, q, call = rng.uniform(0, 0.05, n), rng.uniform(0, 0.03, n), rng.random(n) < 0.5
    price = bs_price(S0, K, T, r, sigma, q, call)
    F = S0 * np.exp((r - q) * T)
    ref = np.array(
        [
            lbr.implied_volatility_from_a_transformed_rational_guess(
                p * math.exp(ri * t), f, k, t, 1.0 if c else -1.0
            )
            for p, f, k, t, ri, c in zip(price, F, K, T, r, call, strict=True)
        ]
    )
    ours = implied_vol(price, S0, K, T, r, q, call)
    vega = bs_greeks(S0, K, T, r, sigma, q, call).vega
    live = np.spacing(price) <= 1e-12 * vega
    assert live.mean() > 0.9
    assert np.max(np.abs(ours - ref)[live]) <= 1e-10


def test_matches_quantlib_implied_volatility() -> None:
    today = ql.Date(15, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    rng = np.random.default_rng(7)
    for _ in range(40):
        K, days = S0 * rng.uniform(0.8, 1.2), int(rng.integers(7, 700))
        sigma, is_call = rng.uniform(0.1, 1.0), bool(rng.random() < 0.5)
        vol = ql.SimpleQuote(0.2)
        process = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(ql.SimpleQuote(S0)),
            ql.YieldTermStructureHandle(ql.FlatForward(today, Q, dc)),
            ql.YieldTermStructureHandle(ql.FlatForward(today, R, dc)),
            ql.BlackVolTermStructureHandle(
                ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vol), dc)
            ),
        )
        option = ql.VanillaOption(
            ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, K),
            ql.EuropeanExercise(today + days),
        )
        option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
        price = bs_price(S0, K, days / 365, R, sigma, Q, is_call)
        ref = option.impliedVolatility(price, process, 1e-13, 500, 1e-4, 10.0)
        assert implied_vol(price, S0, K, days / 365, R, Q, is_call) == pytest.approx(ref, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(
    m=st.floats(0.5, 2.0),
    T=st.floats(1 / 8760, 5.0),
    sigma=st.floats(0.01, 5.0),
    r=st.floats(-0.02, 0.1),
    q=st.floats(0.0, 0.1),
    call=st.booleans(),
)
def test_round_trip_property(m, T, sigma, r, q, call) -> None:
    K = S0 * m
    price = bs_price(S0, K, T, r, sigma, q, call)
    lower, upper = no_arbitrage_bounds(S0, K, T, r, q, call)
    vega = bs_greeks(S0, K, T, r, sigma, q, call).vega
    assume(price - lower > 1e-10 * S0 and upper - price > 1e-10 * S0)
    assume(np.spacing(price) <= 1e-12 * vega)
    assert implied_vol(price, S0, K, T, r, q, call) == pytest.approx(sigma, abs=1e-10)


def test_broadcast_shapes_and_flags() -> None:
    K = np.array([[90.0], [100.0], [110.0]])
    T = np.array([0.1, 0.5, 1.0, 2.0])
    price = bs_price(S0, K, T, R, 0.3, Q, "P")
    out = iv_and_greeks(price, S0, K, T, R, Q, "P")
    assert out.iv.shape == out.delta.shape == out.status.shape == (3, 4)
    np.testing.assert_allclose(out.iv, 0.3, atol=1e-12)
    assert np.all(out.delta < 0)
