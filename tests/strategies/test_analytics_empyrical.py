"""Parity of strategies.analytics with empyrical-reloaded (independent reference) to 1e-8 relative.

Deliberate, documented deviations (not exercised by the parity grid below):
* all-NaN input gives NaN everywhere; empyrical returns 0 for ``max_drawdown``,
  ``annual_return`` and ``cum_returns_final`` (it treats NaN as a flat period).
* ``value_at_risk`` drops NaNs like ``conditional_value_at_risk`` does; empyrical's VaR returns NaN
  when any return is NaN, so for inputs with NaNs we compare with empyrical on the NaN-free data.
* empty input to ``drawdown_series``/``cum_returns`` gives an empty series, not a scalar NaN.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import empyrical
import empyrical.stats
import numpy as np
import pandas as pd
import polars as pl
import pytest

import strategies.analytics as sa

RTOL = 1e-8
# Absolute slack only for float noise around results that are mathematically 0: empyrical gives
# 1.04e-17 for the volatility of a constant series (we give exactly 0) and ~1e-18 betas against a
# constant; 1e-15 is ~13 orders of magnitude below any return-scale difference that matters.
ATOL = 1e-15


@dataclass(frozen=True)
class Case:
    returns: Any
    period: str = "daily"


def _normal(seed: int = 42, n: int = 1000) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0005, 0.01, n)


def _with_nans() -> np.ndarray:
    r = _normal(3, 600)
    r[np.random.default_rng(4).choice(600, 30, replace=False)] = np.nan
    return r


INPUTS: dict[str, Case] = {
    "normal": Case(_normal()),
    "fat_tailed_t3": Case(np.random.default_rng(7).standard_t(3, 750) * 0.01 + 0.0003),
    "with_nans": Case(_with_nans()),
    "short": Case(np.array([0.01, -0.02, 0.015, 0.003, -0.007])),
    "constant": Case(np.full(50, 0.001)),
    "all_negative": Case(-np.abs(_normal(11, 300))),
    "series_datetime": Case(
        pd.Series(_normal(5, 520), index=pd.bdate_range("2021-01-04", periods=520), name="strat")
    ),
    "weekly": Case(np.random.default_rng(8).normal(0.002, 0.02, 260), period="weekly"),
    "monthly": Case(np.random.default_rng(9).normal(0.008, 0.04, 120), period="monthly"),
}

# (label, function name, extra kwargs)
FUNCTIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("sharpe", "sharpe_ratio", {}),
    ("sharpe_rf", "sharpe_ratio", {"risk_free": 0.0001}),
    ("sortino", "sortino_ratio", {}),
    ("sortino_req", "sortino_ratio", {"required_return": 0.0005}),
    ("downside_risk", "downside_risk", {}),
    ("downside_risk_req", "downside_risk", {"required_return": 0.001}),
    ("max_drawdown", "max_drawdown", {}),
    ("annual_return", "annual_return", {}),
    ("cum_returns_final", "cum_returns_final", {}),
    ("cum_returns_final_100", "cum_returns_final", {"starting_value": 100}),
    ("cum_returns", "cum_returns", {}),
    ("cum_returns_100", "cum_returns", {"starting_value": 100}),
    ("drawdown_series", "drawdown_series", {}),
    ("annual_volatility", "annual_volatility", {}),
    ("annual_volatility_alpha3", "annual_volatility", {"alpha": 3.0}),
    ("calmar", "calmar_ratio", {}),
    ("omega", "omega_ratio", {}),
    ("omega_req", "omega_ratio", {"required_return": 0.1, "risk_free": 0.0001}),
    ("tail_ratio", "tail_ratio", {}),
    ("value_at_risk", "value_at_risk", {}),
    ("value_at_risk_1pct", "value_at_risk", {"cutoff": 0.01}),
    ("cvar", "conditional_value_at_risk", {}),
    ("cvar_1pct", "conditional_value_at_risk", {"cutoff": 0.01}),
    ("stability", "stability_of_timeseries", {}),
]


def _call(fn: Callable[..., Any], returns: Any, period: str, kwargs: dict[str, Any]) -> Any:
    if "period" in inspect.signature(fn).parameters:
        kwargs = {**kwargs, "period": period}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empyrical's own 0/0 warnings
        return fn(returns, **kwargs)


def _reference_input(name: str, case: Case) -> Any:
    if name == "value_at_risk" and not isinstance(case.returns, pd.Series):
        return case.returns[~np.isnan(case.returns)]  # documented deviation, see module docstring
    return case.returns


def _assert_same(ours: Any, theirs: Any) -> None:
    if isinstance(theirs, pd.Series):
        assert isinstance(ours, pd.Series)
        pd.testing.assert_index_equal(ours.index, theirs.index)
    np.testing.assert_allclose(
        np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("input_name", list(INPUTS))
@pytest.mark.parametrize(("label", "fn_name", "kwargs"), FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_matches_empyrical(input_name: str, label: str, fn_name: str, kwargs: dict) -> None:
    case = INPUTS[input_name]
    ours = _call(getattr(sa, fn_name), case.returns, case.period, kwargs)
    reference = _reference_input(fn_name, case)
    theirs = _call(getattr(empyrical.stats, fn_name), reference, case.period, kwargs)
    _assert_same(ours, theirs)


@pytest.mark.parametrize("input_name", list(INPUTS))
def test_alpha_beta_matches_empyrical(input_name: str) -> None:
    case = INPUTS[input_name]
    r = case.returns
    noise = np.random.default_rng(21).normal(0.0003, 0.008, len(r))
    factor: Any = 0.5 * np.nan_to_num(np.asarray(r, dtype=float)) + noise
    if isinstance(r, pd.Series):
        factor = pd.Series(factor, index=r.index).iloc[7:]  # forces index alignment
    ours = sa.alpha_beta(r, factor, period=case.period)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs = empyrical.alpha_beta(r, factor, period=case.period)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def test_value_at_risk_with_nans_is_nan_aware_unlike_empyrical() -> None:
    r = INPUTS["with_nans"].returns
    assert np.isnan(empyrical.value_at_risk(r))  # the quirk we deliberately do not copy
    assert sa.value_at_risk(r) == pytest.approx(np.nanpercentile(r, 5), rel=1e-12)


def test_polars_series_input_matches_numpy() -> None:
    r = INPUTS["with_nans"].returns
    pl_r = pl.Series("r", r)  # NaN stays NaN in polars
    for name in ("sharpe_ratio", "sortino_ratio", "max_drawdown", "annual_return", "calmar_ratio"):
        assert getattr(sa, name)(pl_r) == pytest.approx(getattr(empyrical, name)(r), rel=RTOL)
    assert isinstance(sa.cum_returns(pl_r), pl.Series)


def test_constant_positive_returns_sharpe_is_inf_like_empyrical() -> None:
    r = np.full(30, 0.002)
    assert empyrical.sharpe_ratio(r) == np.inf
    assert sa.sharpe_ratio(r) == np.inf
    assert sa.sharpe_ratio(-r) == -np.inf == empyrical.sharpe_ratio(-r)
    assert np.isnan(sa.sharpe_ratio(np.zeros(30))) and np.isnan(
        empyrical.sharpe_ratio(np.zeros(30))
    )
    assert sa.sortino_ratio(r) == np.inf == empyrical.sortino_ratio(r)


SCALAR_FUNCTIONS = [f for f in dict.fromkeys(f[1] for f in FUNCTIONS) if f != "cum_returns"] + [
    "max_drawdown_duration"
]


@pytest.mark.parametrize("fn_name", [f for f in SCALAR_FUNCTIONS if f != "drawdown_series"])
@pytest.mark.parametrize("values", [np.array([]), np.full(6, np.nan)], ids=["empty", "all_nan"])
def test_empty_and_all_nan_give_nan(fn_name: str, values: np.ndarray) -> None:
    assert np.isnan(getattr(sa, fn_name)(values))


def test_annualization_overrides_period_and_unknown_period_is_rejected() -> None:
    r = INPUTS["normal"].returns
    assert sa.sharpe_ratio(r, annualization=52) == pytest.approx(
        sa.sharpe_ratio(r, period="weekly"), rel=1e-12
    )
    with pytest.raises(ValueError, match="period must be one of"):
        sa.sharpe_ratio(r, period="hourly")


def test_two_dimensional_input_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="one-dimensional"):
        sa.sharpe_ratio(np.zeros((10, 2)))
