"""One-call headline metrics for a return series (and optionally its trades and positions)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from strategies.analytics._utils import DAILY, as_float_array, finite_or_nan
from strategies.analytics.drawdown import calmar_ratio, max_drawdown, max_drawdown_duration
from strategies.analytics.returns import (
    annual_return,
    annual_volatility,
    cum_returns_final,
    omega_ratio,
    sharpe_ratio,
    sortino_ratio,
)
from strategies.analytics.risk import (
    conditional_value_at_risk,
    stability_of_timeseries,
    tail_ratio,
    value_at_risk,
)
from strategies.analytics.significance import probabilistic_sharpe_ratio
from strategies.analytics.trades import exposure, profit_factor, trade_pnl, turnover, win_rate

__all__ = ["summary"]


def _moments(r: np.ndarray) -> tuple[float, float]:
    valid = finite_or_nan(r)
    if valid.size < 2 or np.ptp(valid) == 0:
        return np.nan, np.nan
    return float(stats.skew(valid)), float(stats.kurtosis(valid, fisher=False))


def summary(
    returns: Any,
    trades: Any = None,
    positions: Any = None,
    *,
    period: str = DAILY,
    annualization: float | None = None,
    risk_free: float = 0.0,
) -> dict[str, float]:
    """Headline performance metrics as a flat ``{name: float}`` dict (ready for MLflow).

    Args:
        returns: Simple periodic returns.
        trades: Optional per-trade P&L (array, Series, or DataFrame with a ``pnl`` column).
        positions: Optional position weights per period (1-D or periods x assets).
        period: ``'daily'``, ``'weekly'`` or ``'monthly'``.
        annualization: Periods per year, overriding ``period``.
        risk_free: Risk-free return per period, used by the Sharpe ratio.

    Returns:
        Total and annual return, volatility, Sharpe/Sortino/Calmar/Omega, drawdown depth and
        duration, tail metrics, skew and raw kurtosis, PSR against 0 and the observation
        count; plus trade and position statistics when given.
    """
    r = as_float_array(returns)
    ann = annualization
    skew, kurt = _moments(r)
    out: dict[str, float] = {
        "n_obs": float(np.count_nonzero(~np.isnan(r))),
        "total_return": cum_returns_final(r),
        "annual_return": annual_return(r, period=period, annualization=ann),
        "annual_volatility": annual_volatility(r, period=period, annualization=ann),
        "sharpe_ratio": sharpe_ratio(r, risk_free, period=period, annualization=ann),
        "sortino_ratio": sortino_ratio(r, period=period, annualization=ann),
        "calmar_ratio": calmar_ratio(r, period=period, annualization=ann),
        "omega_ratio": omega_ratio(r),
        "max_drawdown": max_drawdown(r),
        "max_drawdown_duration": max_drawdown_duration(r),
        "tail_ratio": tail_ratio(r),
        "value_at_risk": value_at_risk(r),
        "conditional_value_at_risk": conditional_value_at_risk(r),
        "stability_of_timeseries": stability_of_timeseries(r),
        "skew": skew,
        "kurtosis": kurt,
        "probabilistic_sharpe_ratio": probabilistic_sharpe_ratio(r - risk_free),
    }
    if trades is not None:
        out["n_trades"] = float(trade_pnl(trades).size)
        out["win_rate"] = win_rate(trades)
        out["profit_factor"] = profit_factor(trades)
    if positions is not None:
        out["exposure"] = exposure(positions)
        out["turnover"] = turnover(positions, period=period, annualization=ann)
    return out
