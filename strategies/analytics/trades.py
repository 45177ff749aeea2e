"""Trade- and position-level statistics: win rate, profit factor, exposure, turnover."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from strategies.analytics._utils import (
    DAILY,
    annualization_factor,
    as_float_array,
    as_float_matrix,
    finite_or_nan,
)

__all__ = ["exposure", "profit_factor", "trade_pnl", "turnover", "win_rate"]


def trade_pnl(trades: Any) -> np.ndarray:
    """Per-trade P&L as a float array, NaNs (open or unpriced trades) dropped.

    Args:
        trades: An array or Series of per-trade P&L, or a pandas/polars DataFrame with a
            ``pnl`` column.

    Returns:
        The closed trades' P&L.

    Raises:
        ValueError: If a DataFrame has no ``pnl`` column.
    """
    if isinstance(trades, (pd.DataFrame, pl.DataFrame)):
        if "pnl" not in trades.columns:
            raise ValueError(f"trades DataFrame needs a 'pnl' column; got {list(trades.columns)}")
        trades = trades["pnl"]
    return finite_or_nan(as_float_array(trades, "trades"))


def win_rate(trades: Any) -> float:
    """Share of trades with a strictly positive P&L (break-even trades are not wins).

    Args:
        trades: Per-trade P&L (see :func:`trade_pnl`).

    Returns:
        The win rate in [0, 1]; NaN with no trades.
    """
    pnl = trade_pnl(trades)
    return float(np.mean(pnl > 0)) if pnl.size else np.nan


def profit_factor(trades: Any) -> float:
    """Gross profit divided by gross loss.

    Args:
        trades: Per-trade P&L (see :func:`trade_pnl`).

    Returns:
        The profit factor; ``inf`` with profits and no losses; NaN with no trades or when
        both gross profit and gross loss are zero.
    """
    pnl = trade_pnl(trades)
    if pnl.size == 0:
        return np.nan
    gross_profit = pnl[pnl > 0].sum()
    gross_loss = -pnl[pnl < 0].sum()
    if gross_loss == 0:
        return np.inf if gross_profit > 0 else np.nan
    return float(gross_profit / gross_loss)


def exposure(positions: Any) -> float:
    """Share of periods with any open position (NaN positions count as flat).

    Args:
        positions: Position sizes or weights per period; 1-D, or 2-D with one column per asset.

    Returns:
        The fraction of periods in the market, in [0, 1]; NaN for empty input.
    """
    pos = np.nan_to_num(as_float_matrix(positions, "positions"), nan=0.0)
    if pos.shape[0] == 0:
        return np.nan
    return float(np.mean(np.any(pos != 0, axis=1)))


def turnover(
    weights: Any,
    period: str = DAILY,
    annualization: float | None = None,
) -> float:
    """Annualized two-way turnover of portfolio weights.

    Per period, turnover is ``sum_i |w_i,t - w_i,t-1|`` (buys plus sells, as a fraction of
    equity), starting from cash (``w_-1 = 0``, so the initial entry counts). The result is the
    mean per-period turnover times the periods per year: 2.0 means buying and selling the whole
    book once a year.

    Args:
        weights: Portfolio weights per period; 1-D, or 2-D with one column per asset. NaN
            weights count as 0 (flat).
        period: ``'daily'``, ``'weekly'`` or ``'monthly'``.
        annualization: Periods per year, overriding ``period``.

    Returns:
        The annualized turnover; NaN for empty input.
    """
    w = np.nan_to_num(as_float_matrix(weights, "weights"), nan=0.0)
    if w.shape[0] == 0:
        return np.nan
    traded = np.abs(np.diff(w, axis=0, prepend=0.0)).sum(axis=1)
    return float(traded.mean() * annualization_factor(period, annualization))
