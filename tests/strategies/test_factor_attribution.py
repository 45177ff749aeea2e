"""Market beta against Anscombe's published regression and scipy's linregress; Greek split sums."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from strategies.analytics.factor import factor_attribution, market_beta

# Anscombe (1973), "Graphs in Statistical Analysis", data set I and its published fit:
# y = 3.00 + 0.500 x, standard error of the slope 0.118, t = 4.24, correlation r = 0.816,
# residual sum of squares 13.75 on 9 degrees of freedom (all as printed, rounded).
ANSCOMBE_X = [10, 8, 13, 9, 11, 14, 6, 4, 12, 7, 5]
ANSCOMBE_Y = [8.04, 6.95, 7.58, 8.81, 8.33, 9.96, 7.24, 4.26, 10.84, 4.82, 5.68]


def test_anscombe_published_regression() -> None:
    fit = market_beta(ANSCOMBE_Y, ANSCOMBE_X)
    assert fit.alpha == pytest.approx(3.00, abs=5e-3)
    assert fit.beta == pytest.approx(0.500, abs=5e-4)
    assert fit.beta_se == pytest.approx(0.118, abs=5e-4)
    assert fit.beta_t == pytest.approx(4.24, abs=5e-3)
    assert math.sqrt(fit.r_squared) == pytest.approx(0.816, abs=5e-4)
    assert fit.residual_vol**2 * (fit.n - 2) == pytest.approx(13.75, abs=0.015)
    assert fit.n == 11


def test_matches_scipy_linregress_to_1e12() -> None:
    rng = np.random.default_rng(4)
    market = rng.normal(0.0004, 0.011, 750)
    strategy = 0.0002 + 0.7 * market + rng.normal(0, 0.006, 750)
    strategy[[3, 90]] = np.nan  # missing days drop from both
    fit = market_beta(strategy, market)
    ok = np.isfinite(strategy)
    ref = stats.linregress(market[ok], strategy[ok])
    assert fit.n == 748
    assert fit.beta == pytest.approx(ref.slope, rel=1e-12)
    assert fit.alpha == pytest.approx(ref.intercept, rel=1e-10)
    assert fit.beta_se == pytest.approx(ref.stderr, rel=1e-10)
    assert fit.alpha_se == pytest.approx(ref.intercept_stderr, rel=1e-10)
    assert fit.r_squared == pytest.approx(ref.rvalue**2, rel=1e-12)
    assert fit.alpha_annual == pytest.approx((1 + fit.alpha) ** 252 - 1, rel=1e-12)


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="same periods"):
        market_beta([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="at least 3"):
        market_beta([0.1, np.nan, 0.3], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="constant"):
        market_beta([0.1, 0.2, 0.3], [0.01, 0.01, 0.01])


def test_factor_attribution_puts_market_and_greeks_side_by_side() -> None:
    rng = np.random.default_rng(1)
    market = rng.normal(0, 0.01, 60)
    strategy = 0.001 + 1.5 * market + rng.normal(0, 0.002, 60)
    sessions = [date(2024, 1, 2) + timedelta(days=i) for i in range(60)]
    greeks = pl.DataFrame(
        {
            "session": sessions,
            "delta": rng.normal(10, 1, 60),
            "gamma": np.full(60, -1.0),
            "theta": np.full(60, 2.5),
            "vega": np.r_[np.nan, np.ones(59)],
        }
    )
    out = factor_attribution(strategy, market, greeks)
    assert out.market is not None and out.market.beta == pytest.approx(1.5, abs=0.05)
    # the three return parts add back to the strategy's summed return
    total = out.market_return + out.alpha_return + out.residual_return
    assert total == pytest.approx(strategy.sum(), rel=1e-12)
    assert out.residual_return == pytest.approx(0.0, abs=1e-12)  # OLS residuals sum to 0
    assert out.greeks["theta"] == pytest.approx(150.0)
    assert out.greeks["vega"] == pytest.approx(59.0)
    table = out.table()
    assert set(table["kind"]) == {"market", "greeks"}
    assert table.filter(pl.col("component") == "gamma")["value"][0] == pytest.approx(-60.0)
    alone = factor_attribution(strategy, None, greeks)
    assert alone.market is None and math.isnan(alone.market_return)
