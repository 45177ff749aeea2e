"""Core return metrics with empyrical's names, arguments and NaN conventions.

Every function takes ``returns`` as simple (not log) periodic returns: a 1-D numpy array, a
pandas Series or a polars Series. NaNs are skipped by the reductions (nan-aware mean/std,
``ddof=1``) and count as flat (0 %) periods where compounding is involved, exactly as in
empyrical. Results that need more observations than are available are NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from strategies.analytics._utils import (
    DAILY,
    annualization_factor,
    as_float_array,
    wrap_like,
)

__all__ = [
    "annual_return",
    "annual_volatility",
    "cum_returns",
    "cum_returns_final",
    "downside_risk",
    "omega_ratio",
    "sharpe_ratio",
    "sortino_ratio",
]


def _n_valid(r: np.ndarray) -> int:
    return int(np.count_nonzero(~np.isnan(r)))


def cum_returns(returns: Any, starting_value: float = 0) -> Any:
    """Cumulative compounded returns; NaN returns count as 0 %.

    Args:
        returns: Simple periodic returns.
        starting_value: 0 gives cumulative *returns*; any other value gives the wealth path
            starting from ``starting_value``.

    Returns:
        One value per input period, in the input's container type (pandas Series keep their index).
    """
    r = as_float_array(returns)
    out = np.cumprod(np.where(np.isnan(r), 0.0, r) + 1.0)
    out = out - 1.0 if starting_value == 0 else out * starting_value
    return wrap_like(returns, out)


def cum_returns_final(returns: Any, starting_value: float = 0) -> float:
    """Total compounded return over the whole series.

    Args:
        returns: Simple periodic returns.
        starting_value: 0 gives the total return; otherwise the ending wealth.

    Returns:
        The total return, NaN for empty or all-NaN input (empyrical returns 0 for all-NaN).
    """
    r = as_float_array(returns)
    if _n_valid(r) == 0:
        return np.nan
    result = np.nanprod(r + 1.0)
    return float(result - 1.0 if starting_value == 0 else result * starting_value)


def annual_return(returns: Any, period: str = DAILY, annualization: float | None = None) -> float:
    """Compound annual growth rate (CAGR).

    The number of years is ``len(returns) / annualization``; NaN periods count as flat periods.

    Args:
        returns: Simple periodic returns.
        period: ``'daily'`` (252), ``'weekly'`` (52) or ``'monthly'`` (12).
        annualization: Periods per year, overriding ``period``.

    Returns:
        The CAGR; NaN for empty or all-NaN input.
    """
    r = as_float_array(returns)
    if _n_valid(r) == 0:
        return np.nan
    num_years = len(r) / annualization_factor(period, annualization)
    ending_value = cum_returns_final(r, starting_value=1)
    with np.errstate(invalid="ignore"):
        return float(np.float64(ending_value) ** (1 / num_years) - 1)


def annual_volatility(
    returns: Any,
    period: str = DAILY,
    alpha: float = 2.0,
    annualization: float | None = None,
) -> float:
    """Annualized standard deviation (``ddof=1``) scaled by ``annualization ** (1 / alpha)``.

    Args:
        returns: Simple periodic returns.
        period: ``'daily'``, ``'weekly'`` or ``'monthly'``.
        alpha: Scaling exponent; 2 is the square-root-of-time rule.
        annualization: Periods per year, overriding ``period``.

    Returns:
        The annualized volatility; NaN with fewer than two valid observations.
    """
    r = as_float_array(returns)
    if _n_valid(r) < 2:
        return np.nan
    ann = annualization_factor(period, annualization)
    return float(np.nanstd(r, ddof=1) * ann ** (1.0 / alpha))


def sharpe_ratio(
    returns: Any,
    risk_free: Any = 0,
    period: str = DAILY,
    annualization: float | None = None,
) -> float:
    """Annualized Sharpe ratio: ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(annualization)``.

    As in empyrical-reloaded, a series with zero dispersion (all valid values equal) has a
    standard deviation of exactly 0, so constant positive returns give ``inf``, constant
    negative returns ``-inf`` and constant zero returns NaN.

    Args:
        returns: Simple periodic returns.
        risk_free: Risk-free return per period (scalar or array of the same length).
        period: ``'daily'``, ``'weekly'`` or ``'monthly'``.
        annualization: Periods per year, overriding ``period``.

    Returns:
        The annualized Sharpe ratio; NaN with fewer than two valid observations.
    """
    r = as_float_array(returns)
    adj = r - as_float_array(risk_free, "risk_free") if np.ndim(risk_free) else r - risk_free
    if len(r) < 2 or _n_valid(adj) < 2:
        return np.nan
    ann = annualization_factor(period, annualization)
    std = np.nanstd(adj, ddof=1)
    if np.nanmax(adj) == np.nanmin(adj) and np.isfinite(std):
        std = 0.0  # constant series: float noise in the std must not turn inf into a big number
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(np.nanmean(adj)) / std * np.sqrt(ann))


def downside_risk(
    returns: Any,
    required_return: Any = 0,
    period: str = DAILY,
    annualization: float | None = None,
) -> float:
    """Annualized downside deviation below ``required_return``.

    ``sqrt(mean(min(r - required_return, 0) ** 2)) * sqrt(annualization)``, the mean taken over
    all valid periods (periods above the target count as zero shortfall).

    Args:
        returns: Simple periodic returns.
        required_return: Minimum acceptable return per period (scalar or array).
        period: ``'daily'``, ``'weekly'`` or ``'monthly'``.
        annualization: Periods per year, overriding ``period``.

    Returns:
        The annualized downside risk; NaN for empty or all-NaN input.
    """
    r = as_float_array(returns)
    adj = r - (as_float_array(required_return) if np.ndim(required_return) else required_return)
    if _n_valid(adj) == 0:
        return np.nan
    ann = annualization_factor(period, annualization)
    shortfall = np.square(np.clip(adj, -np.inf, 0))
    return float(np.sqrt(np.nanmean(shortfall)) * np.sqrt(ann))


def sortino_ratio(
    returns: Any,
    required_return: Any = 0,
    period: str = DAILY,
    annualization: float | None = None,
) -> float:
    """Annualized Sortino ratio: annualized mean excess return over annualized downside risk.

    Args:
        returns: Simple periodic returns.
        required_return: Minimum acceptable return per period (scalar or array).
        period: ``'daily'``, ``'weekly'`` or ``'monthly'``.
        annualization: Periods per year, overriding ``period``.

    Returns:
        The Sortino ratio (``inf`` when there is no downside and the mean is positive); NaN
        with fewer than two observations.
    """
    r = as_float_array(returns)
    adj = r - (as_float_array(required_return) if np.ndim(required_return) else required_return)
    if len(r) < 2 or _n_valid(adj) == 0:
        return np.nan
    ann = annualization_factor(period, annualization)
    mean_annual = np.float64(np.nanmean(adj)) * ann
    risk = downside_risk(r, required_return, period, annualization)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(mean_annual / np.float64(risk))


def omega_ratio(
    returns: Any,
    risk_free: float = 0.0,
    required_return: float = 0.0,
    annualization: float = 252,
) -> float:
    """Omega ratio: probability-weighted gains over losses relative to a threshold.

    ``required_return`` is an *annual* return, de-annualized with ``annualization`` (empyrical's
    convention; note that this function has no ``period`` argument in empyrical either).

    Args:
        returns: Simple periodic returns.
        risk_free: Risk-free return per period.
        required_return: Annual threshold return; must be greater than -1.
        annualization: Periods per year used to de-annualize ``required_return``.

    Returns:
        The Omega ratio; NaN with fewer than two observations or no returns below the threshold.
    """
    r = as_float_array(returns)
    if len(r) < 2:
        return np.nan
    if annualization == 1:
        threshold = required_return
    elif required_return <= -1:
        return np.nan
    else:
        threshold = (1 + required_return) ** (1.0 / annualization) - 1
    excess = r - risk_free - threshold
    gains = np.sum(excess[excess > 0.0])
    losses = -np.sum(excess[excess < 0.0])
    return float(gains / losses) if losses > 0.0 else np.nan
