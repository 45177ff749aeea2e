"""Drawdown path, depth, duration and the Calmar ratio."""

from __future__ import annotations

from typing import Any

import numpy as np

from strategies.analytics._utils import DAILY, as_float_array, wrap_like
from strategies.analytics.returns import annual_return

__all__ = ["calmar_ratio", "drawdown_series", "max_drawdown", "max_drawdown_duration"]


def _underwater(r: np.ndarray) -> np.ndarray:
    # Same arithmetic as empyrical: wealth from 100, running peak includes the starting value.
    wealth = np.empty(len(r) + 1)
    wealth[0] = 100.0
    wealth[1:] = 100.0 * np.cumprod(np.where(np.isnan(r), 0.0, r) + 1.0)
    peak = np.fmax.accumulate(wealth)
    return ((wealth - peak) / peak)[1:]


def drawdown_series(returns: Any) -> Any:
    """Drawdown from the running peak at every period (0 at a new high, negative below it).

    The starting wealth counts as a peak, so a loss in the first period is a drawdown. NaN
    returns count as flat periods.

    Args:
        returns: Simple periodic returns.

    Returns:
        One value per input period, in the input's container type (pandas Series keep their
        index). Empty input gives an empty result (empyrical returns a scalar NaN).
    """
    r = as_float_array(returns)
    return wrap_like(returns, _underwater(r))


def max_drawdown(returns: Any) -> float:
    """Maximum drawdown: the most negative value of :func:`drawdown_series`.

    Args:
        returns: Simple periodic returns.

    Returns:
        The maximum drawdown as a non-positive fraction (``-0.25`` is a 25 % drawdown); NaN for
        empty or all-NaN input (empyrical returns 0 for all-NaN).
    """
    r = as_float_array(returns)
    if np.isnan(r).all():
        return np.nan
    return float(np.nanmin(_underwater(r)))


def max_drawdown_duration(returns: Any) -> float:
    """Longest stretch of consecutive periods spent below a previous peak.

    A drawdown that has not recovered by the end of the series counts up to the last period.

    Args:
        returns: Simple periodic returns.

    Returns:
        The duration in periods (0 if the series never dips below a peak); NaN for empty or
        all-NaN input.
    """
    r = as_float_array(returns)
    if np.isnan(r).all():
        return np.nan
    below = _underwater(r) < 0
    # Index of the last period at or above the peak, carried forward; run length = gap to it.
    idx = np.arange(1, len(below) + 1)
    last_high = np.maximum.accumulate(np.where(below, 0, idx))
    return float(np.max(idx - last_high))


def calmar_ratio(returns: Any, period: str = DAILY, annualization: float | None = None) -> float:
    """Calmar ratio: annual return (CAGR) divided by the absolute maximum drawdown.

    Args:
        returns: Simple periodic returns.
        period: ``'daily'``, ``'weekly'`` or ``'monthly'``.
        annualization: Periods per year, overriding ``period``.

    Returns:
        The Calmar ratio; NaN when there is no drawdown or the ratio is infinite.
    """
    max_dd = max_drawdown(returns)
    if not max_dd < 0:
        return np.nan
    ratio = annual_return(returns, period=period, annualization=annualization) / abs(max_dd)
    return np.nan if np.isinf(ratio) else float(ratio)
