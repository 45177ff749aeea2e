"""Cross-check with vectorbt's returns accessor, and document its 365-day default trap.

vectorbt annualizes with ``year_freq / freq``; its default ``year_freq`` is 365 days
(``vectorbt/_settings.py``), so daily trading returns get a Sharpe inflated by sqrt(365/252) ~ 1.2
unless ``year_freq='252 days'`` is passed. With it, every shared metric equals ours.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt  # noqa: F401  (registers the .vbt accessor)

import strategies.analytics as sa


@pytest.fixture(scope="module")
def daily() -> pd.Series:
    values = np.random.default_rng(2).normal(0.0004, 0.011, 750)
    return pd.Series(values, index=pd.date_range("2021-01-01", periods=750, freq="D"))


def test_sharpe_equals_vectorbt_with_252_day_year(daily: pd.Series) -> None:
    vbt_sharpe = daily.vbt.returns(freq="1D", year_freq="252 days").sharpe_ratio()
    assert sa.sharpe_ratio(daily) == pytest.approx(vbt_sharpe, rel=1e-10)


def test_vectorbt_default_year_is_365_days(daily: pd.Series) -> None:
    default = daily.vbt.returns(freq="1D").sharpe_ratio()
    assert default != pytest.approx(sa.sharpe_ratio(daily), rel=1e-3)
    assert default == pytest.approx(sa.sharpe_ratio(daily) * np.sqrt(365 / 252), rel=1e-10)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (sa.annual_volatility, "annualized_volatility"),
        (sa.sortino_ratio, "sortino_ratio"),
        (sa.max_drawdown, "max_drawdown"),
        (sa.annual_return, "annualized"),
        (sa.calmar_ratio, "calmar_ratio"),
        (sa.omega_ratio, "omega_ratio"),
        (sa.tail_ratio, "tail_ratio"),
        (sa.value_at_risk, "value_at_risk"),
        (sa.conditional_value_at_risk, "cond_value_at_risk"),
    ],
)
def test_other_metrics_equal_vectorbt(daily: pd.Series, ours, theirs: str) -> None:
    accessor = daily.vbt.returns(freq="1D", year_freq="252 days")
    assert ours(daily) == pytest.approx(getattr(accessor, theirs)(), rel=1e-10)


def test_constant_returns_sharpe_is_inf_ours_but_float_noise_decides_in_vectorbt() -> None:
    # vectorbt returns inf only when its std comes out exactly 0.0; for 0.001 a day the float
    # noise of the std (~1e-19) turns the Sharpe into ~2e16. We follow empyrical-reloaded's
    # zero-dispersion rule, so a constant positive series is always inf.
    index = pd.date_range("2021-01-01", periods=100, freq="D")
    exact = pd.Series(0.25, index=index).vbt.returns(freq="1D", year_freq="252 days")
    noisy = pd.Series(0.001, index=index).vbt.returns(freq="1D", year_freq="252 days")
    assert exact.sharpe_ratio() == np.inf
    assert 1e15 < noisy.sharpe_ratio() < np.inf
    assert sa.sharpe_ratio(np.full(100, 0.25)) == sa.sharpe_ratio(np.full(100, 0.001)) == np.inf
