"""Metrics relative to a benchmark (factor) return series."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strategies.analytics._utils import DAILY, annualization_factor, as_float_array

__all__ = ["alpha_beta"]


def _aligned(returns: Any, factor_returns: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(returns, pd.Series) and isinstance(factor_returns, pd.Series):
        # Outer join on the index, as empyrical does; unmatched dates become NaN.
        joined = pd.concat([returns, factor_returns], axis=1)
        return as_float_array(joined.iloc[:, 0]), as_float_array(joined.iloc[:, 1])
    r = as_float_array(returns)
    f = as_float_array(factor_returns, "factor_returns")
    if r.shape != f.shape:
        raise ValueError(
            f"returns ({len(r)}) and factor_returns ({len(f)}) must have the same length, "
            "or both be pandas Series to align on their index"
        )
    return r, f


def alpha_beta(
    returns: Any,
    factor_returns: Any,
    risk_free: float = 0.0,
    period: str = DAILY,
    annualization: float | None = None,
) -> tuple[float, float]:
    """Annualized alpha and beta of ``returns`` against ``factor_returns`` (CAPM regression).

    ``beta = cov(r, f) / var(f)`` over periods where both are present (population moments,
    as empyrical); ``alpha = (1 + mean(r - rf - beta * (f - rf))) ** annualization - 1``.

    Args:
        returns: Simple periodic returns of the strategy.
        factor_returns: Simple periodic returns of the benchmark, aligned with ``returns``
            (pandas Series are aligned on their index).
        risk_free: Risk-free return per period.
        period: ``'daily'``, ``'weekly'`` or ``'monthly'``.
        annualization: Periods per year, overriding ``period``.

    Returns:
        ``(alpha, beta)``; NaNs with fewer than two observations or a constant benchmark.
    """
    r, f = _aligned(returns, factor_returns)
    if len(r) < 2:
        return np.nan, np.nan
    ann = annualization_factor(period, annualization)
    independent = np.where(np.isnan(r), np.nan, f)
    if np.count_nonzero(~np.isnan(independent)) == 0:
        return np.nan, np.nan
    residual = independent - np.nanmean(independent)
    with np.errstate(invalid="ignore"):
        covariance = np.nanmean(residual * r) if np.any(~np.isnan(residual * r)) else np.nan
    variance = np.nanmean(np.square(residual))
    beta = np.nan if variance < 1.0e-30 else covariance / variance
    alpha_series = (r - risk_free) - beta * (f - risk_free)
    if np.isnan(alpha_series).all():
        return np.nan, float(beta)
    return float((1 + np.nanmean(alpha_series)) ** ann - 1), float(beta)
