"""Tail and shape metrics: VaR, CVaR, tail ratio and stability of the equity curve."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from strategies.analytics._utils import as_float_array, finite_or_nan

__all__ = [
    "conditional_value_at_risk",
    "stability_of_timeseries",
    "tail_ratio",
    "value_at_risk",
]


def value_at_risk(returns: Any, cutoff: float = 0.05) -> float:
    """Historical value at risk: the ``cutoff`` percentile of the returns.

    NaNs are dropped first. (empyrical's ``value_at_risk`` returns NaN as soon as one return
    is NaN, while its ``conditional_value_at_risk`` drops them; we drop them in both.)

    Args:
        returns: Simple periodic returns.
        cutoff: Tail probability, e.g. 0.05 for the 5 % VaR.

    Returns:
        The VaR as a return (negative for a loss); NaN for empty or all-NaN input.
    """
    r = finite_or_nan(as_float_array(returns))
    if r.size == 0:
        return np.nan
    return float(np.percentile(r, 100 * cutoff))


def conditional_value_at_risk(returns: Any, cutoff: float = 0.05) -> float:
    """Conditional VaR (expected shortfall): mean of the worst ``cutoff`` share of returns.

    The tail holds the ``int((n - 1) * cutoff) + 1`` lowest valid returns, as in empyrical.

    Args:
        returns: Simple periodic returns; NaNs are dropped.
        cutoff: Tail probability.

    Returns:
        The CVaR as a return; NaN for empty or all-NaN input.
    """
    r = finite_or_nan(as_float_array(returns))
    if r.size == 0:
        return np.nan
    cutoff_index = int((len(r) - 1) * cutoff)
    return float(np.mean(np.partition(r, cutoff_index)[: cutoff_index + 1]))


def tail_ratio(returns: Any) -> float:
    """Ratio of the 95th percentile to the absolute 5th percentile of the returns.

    Args:
        returns: Simple periodic returns; NaNs are dropped.

    Returns:
        ``|p95| / |p5|``; NaN for empty input or when both percentiles are 0.
    """
    r = finite_or_nan(as_float_array(returns))
    if r.size == 0:
        return np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.abs(np.percentile(r, 95)) / np.abs(np.percentile(r, 5)))


def stability_of_timeseries(returns: Any) -> float:
    """R-squared of a linear fit to the cumulative log returns (1 = perfectly steady growth).

    Args:
        returns: Simple periodic returns; NaNs are dropped.

    Returns:
        The R-squared; NaN with fewer than two valid observations or a flat equity curve.
    """
    r = as_float_array(returns)
    if len(r) < 2:
        return np.nan
    r = finite_or_nan(r)
    cum_log = np.log1p(r).cumsum()
    if cum_log.size < 2 or np.ptp(cum_log) == 0 or not np.isfinite(cum_log).all():
        return np.nan
    return float(stats.linregress(np.arange(len(cum_log)), cum_log).rvalue ** 2)
