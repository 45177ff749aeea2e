"""American options: limits, textbook values, QuantLib finite differences, IV round trip."""

from __future__ import annotations

import numpy as np
import pytest
import QuantLib as ql

from strategies.pricing import IVStatus, american_implied_vol, american_price, bs_price


def _quantlib_fd(S, K, days, r, q, sigma, is_call, grid=800):
    today = ql.Date(15, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, K),
        ql.AmericanExercise(today, today + int(days)),
    )
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(S)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), sigma, dc)),
    )
    option.setPricingEngine(ql.FdBlackScholesVanillaEngine(process, grid, grid))
    return option.NPV()


def test_call_without_dividends_is_european() -> None:
    rng = np.random.default_rng(1)
    n = 200
    K, T = 100.0 * rng.uniform(0.6, 1.5, n), rng.uniform(0.01, 3.0, n)
    r, sigma = rng.uniform(0.0, 0.08, n), rng.uniform(0.05, 1.5, n)
    np.testing.assert_allclose(
        american_price(100.0, K, T, r, sigma),
        bs_price(100.0, K, T, r, sigma),
        rtol=1e-14,
        atol=1e-12,
    )
    # and the tree itself converges to it when early exercise merely is not optimal (tiny q)
    tree = american_price(100.0, K, T, r, sigma, q=1e-12, steps=401)
    np.testing.assert_allclose(tree, bs_price(100.0, K, T, r, sigma, q=1e-12), atol=2e-3)


def test_put_early_exercise_premium() -> None:
    K = np.array([100.0, 120.0, 150.0, 200.0])
    american = american_price(100.0, K, 1.0, 0.08, 0.25, is_call=False)
    european = bs_price(100.0, K, 1.0, 0.08, 0.25, is_call=False)
    assert np.all(american > european + 0.1)  # material premium, deepest ITM the most
    assert np.all(american >= K - 100.0)
    np.testing.assert_allclose(american[-1], 100.0, atol=1e-9)  # exercise at once


def test_call_with_dividend_yield_beats_european() -> None:
    american = american_price(100.0, 80.0, 1.0, 0.02, 0.2, q=0.08)
    assert american > bs_price(100.0, 80.0, 1.0, 0.02, 0.2, q=0.08) + 0.1
    assert american >= 20.0


def test_hull_american_put_example() -> None:
    # Hull: S=50, K=50, r=10%, sigma=40%, 5 months; a 500-step tree gives 4.283.
    assert american_price(50.0, 50.0, 5 / 12, 0.10, 0.40, is_call=False) == pytest.approx(
        4.283, abs=0.003
    )


def test_matches_quantlib_finite_differences() -> None:
    rng = np.random.default_rng(11)
    n = 24
    K, days = 100.0 * rng.uniform(0.75, 1.25, n), rng.integers(5, 730, n)
    sigma, r = rng.uniform(0.1, 0.9, n), rng.uniform(0.0, 0.06, n)
    q, call = rng.uniform(0.0, 0.05, n), rng.random(n) < 0.4
    ref = np.array(
        [_quantlib_fd(100.0, *row) for row in zip(K, days, r, q, sigma, call, strict=True)]
    )
    ours = american_price(100.0, K, days / 365.0, r, sigma, q, call)
    # Documented accuracy at the default 101 steps + Richardson: a few 1e-3 on S=100; the
    # 800x800 QuantLib grid itself is good to about 2e-3.
    np.testing.assert_allclose(ours, ref, atol=5e-3)


def test_price_converges_with_steps() -> None:
    args = (100.0, 110.0, 1.5, 0.05, 0.45, 0.01, False)
    fine = american_price(*args, steps=3001, richardson=False)
    coarse = abs(american_price(*args, steps=51, richardson=False) - fine)
    default = abs(american_price(*args) - fine)
    assert default < coarse / 3


def test_limits_and_invalid_inputs() -> None:
    put = american_price(100.0, [90.0, 110.0], 0.0, 0.05, 0.3, is_call=False)
    np.testing.assert_array_equal(put, [0.0, 10.0])
    # zero volatility with r > 0: exercise the put right away when deep enough in the money
    assert american_price(100.0, 110.0, 1.0, 0.05, 0.0, is_call=False) == pytest.approx(10.0)
    assert np.isnan(american_price(-1.0, 100.0, 1.0, 0.05, 0.2))
    with pytest.raises(ValueError, match="odd"):
        american_price(100.0, 100.0, 1.0, 0.05, 0.2, steps=100)


def test_implied_vol_round_trip() -> None:
    rng = np.random.default_rng(12)
    n = 3000
    K, T = 100.0 * rng.uniform(0.7, 1.3, n), rng.uniform(1 / 365, 2.0, n)
    sigma, r = rng.uniform(0.05, 1.5, n), rng.uniform(0.0, 0.05, n)
    q, call = rng.uniform(0.0, 0.03, n), rng.random(n) < 0.5
    price = american_price(100.0, K, T, r, sigma, q, call)
    iv, status = american_implied_vol(price, 100.0, K, T, r, q, call, return_status=True)
    h = 1e-4
    vega = (
        american_price(100.0, K, T, r, sigma + h, q, call)
        - american_price(100.0, K, T, r, sigma - h, q, call)
    ) / (2 * h)
    exercise = np.maximum(np.where(call, 1.0, -1.0) * (100.0 - K), 0.0)
    identifiable = (vega > 0.01) & (price - exercise > 1e-6)
    assert identifiable.mean() > 0.9
    assert np.all(status[identifiable] == IVStatus.OK)
    assert np.max(np.abs(iv - sigma)[identifiable]) < 1e-8


def test_implied_vol_statuses() -> None:
    # below exercise, at exercise (and 4 ulps off it), at K, above K, zero, missing
    ulp = np.finfo(np.float64).eps * 110.0
    price = [9.0, 10.0, 10.0 - 4 * ulp, 10.0 + 4 * ulp, 110.0, 111.0, 0.0, np.nan]
    iv, status = american_implied_vol(
        price, 100.0, 110.0, 0.5, 0.05, 0.0, False, return_status=True
    )
    assert [IVStatus(s) for s in status] == [
        IVStatus.BELOW_INTRINSIC,
        *[IVStatus.AT_INTRINSIC] * 3,  # the boundary rule of the European solver (BOUND_RTOL)
        IVStatus.AT_UPPER_BOUND,
        IVStatus.ABOVE_UPPER_BOUND,
        IVStatus.NONPOSITIVE_INPUT,
        IVStatus.NON_FINITE_INPUT,
    ]
    np.testing.assert_array_equal(iv[1:4], 0.0)  # the zero-volatility limit reprices them
    assert american_price(100.0, 110.0, 0.5, 0.05, 0.0, 0.0, False) == 10.0
    assert np.all(np.isnan(np.delete(iv, [1, 2, 3])))
    # no early exercise (call, q=0): identical to the European implied volatility
    european_price = bs_price(100.0, 105.0, 0.5, 0.03, 0.33)
    assert american_implied_vol(european_price, 100.0, 105.0, 0.5, 0.03) == pytest.approx(
        0.33, abs=1e-12
    )
