"""Wilder-smoothed indicators (RSI, ATR), Bollinger Bands and realized volatility."""

from __future__ import annotations

import math
from typing import NamedTuple

import polars as pl

from strategies.indicators._common import (
    TA_EPSILON,
    ColumnLike,
    PartitionBy,
    as_float,
    check_int,
    check_positive,
    per_symbol,
    seeded_ewm,
)


class BollingerBands(NamedTuple):
    """Upper, middle and lower band expressions (a tuple, so it unpacks into ``with_columns``)."""

    upper: pl.Expr
    middle: pl.Expr
    lower: pl.Expr


def rsi(col: ColumnLike, n: int = 14, *, by: PartitionBy = "symbol") -> pl.Expr:
    """Relative Strength Index with Wilder smoothing, as ``talib.RSI``.

    Average gain and loss start at row ``n`` as the plain means of the first ``n`` price changes,
    then follow ``avg[t] = (avg[t-1] * (n - 1) + x[t]) / n``. As in TA-Lib, RSI is 0 (not 50 or
    undefined) when both averages are zero, e.g. over a flat stretch.

    Warm-up: null for the first ``n`` rows of each symbol.

    Args:
        col: Column name or expression.
        n: Period (>= 1).
        by: Partition column(s); ``None`` treats the frame as one series.

    Returns:
        Expression aliased ``rsi_{n}``, in [0, 100].

    Raises:
        ValueError: If ``n`` < 1.
    """
    n = check_int("n", n, 1)
    change = as_float(col).diff()
    gain = seeded_ewm(change.clip(lower_bound=0.0), window=n, alpha=1.0 / n, seed_at=n, by=by)
    loss = seeded_ewm((-change).clip(lower_bound=0.0), window=n, alpha=1.0 / n, seed_at=n, by=by)
    total = gain + loss
    out = pl.when(total.abs() < TA_EPSILON).then(0.0).otherwise(100.0 * gain / total)
    return out.alias(f"rsi_{n}")


def true_range(
    *,
    high: ColumnLike = "high",
    low: ColumnLike = "low",
    close: ColumnLike = "close",
    by: PartitionBy = "symbol",
) -> pl.Expr:
    """True range, as ``talib.TRANGE``: max(high - low, |high - prev close|, |low - prev close|).

    Warm-up: null on the first row of each symbol (no previous close).

    Returns:
        Expression aliased ``tr``.
    """
    return per_symbol(_true_range(high, low, close), by).alias("tr")


def _true_range(high: ColumnLike, low: ColumnLike, close: ColumnLike) -> pl.Expr:
    h, lo, prev = as_float(high), as_float(low), as_float(close).shift(1)
    widest = pl.max_horizontal(h - lo, (h - prev).abs(), (lo - prev).abs())
    # max_horizontal skips nulls, so blank the first row explicitly.
    return pl.when(prev.is_not_null()).then(widest)


def atr(
    n: int = 14,
    *,
    high: ColumnLike = "high",
    low: ColumnLike = "low",
    close: ColumnLike = "close",
    by: PartitionBy = "symbol",
) -> pl.Expr:
    """Average True Range with Wilder smoothing, as ``talib.ATR``.

    The first value, at row ``n``, is the mean of the true ranges of rows ``1..n`` (the first
    bar has none); then ``atr[t] = (atr[t-1] * (n - 1) + tr[t]) / n``.

    Warm-up: null for the first ``n`` rows of each symbol.

    Args:
        n: Period (>= 1).
        high: High column. low: Low column. close: Close column.
        by: Partition column(s); ``None`` treats the frame as one series.

    Returns:
        Expression aliased ``atr_{n}``.

    Raises:
        ValueError: If ``n`` < 1.
    """
    n = check_int("n", n, 1)
    out = seeded_ewm(_true_range(high, low, close), window=n, alpha=1.0 / n, seed_at=n, by=by)
    return out.alias(f"atr_{n}")


def bollinger(
    col: ColumnLike, n: int = 20, k: float = 2.0, *, by: PartitionBy = "symbol"
) -> BollingerBands:
    """Bollinger Bands, as ``talib.BBANDS(nbdevup=k, nbdevdn=k, matype=SMA)``.

    ``middle = SMA(n)``, ``upper/lower = middle +/- k * std`` with the population standard
    deviation (ddof=0) of the same window.

    Warm-up: null for the first ``n - 1`` rows of each symbol.

    Args:
        col: Column name or expression.
        n: Window length (>= 1).
        k: Band width in standard deviations (finite, > 0).
        by: Partition column(s); ``None`` treats the frame as one series.

    Returns:
        ``BollingerBands(upper, middle, lower)`` aliased ``bb_upper_{n}``, ``bb_middle_{n}``,
        ``bb_lower_{n}``.

    Raises:
        ValueError: If ``n`` < 1 or ``k`` is not a finite positive number.
    """
    n = check_int("n", n, 1)
    k = check_positive("k", k)
    x = as_float(col)
    middle = per_symbol(x.rolling_mean(n), by)
    width = k * per_symbol(x.rolling_std(n, ddof=0), by)
    return BollingerBands(
        upper=(middle + width).alias(f"bb_upper_{n}"),
        middle=middle.alias(f"bb_middle_{n}"),
        lower=(middle - width).alias(f"bb_lower_{n}"),
    )


def realized_vol(
    col: ColumnLike,
    n: int = 20,
    periods_per_year: float = 252,
    *,
    by: PartitionBy = "symbol",
) -> pl.Expr:
    """Annualized realized volatility: rolling sample std (ddof=1) of log returns.

    ``rv[t] = std(log(x[t-n+1..t] / x[t-n..t-1])) * sqrt(periods_per_year)``. No TA-Lib
    counterpart; equals pandas ``np.log(x).diff().rolling(n).std() * sqrt(periods_per_year)``.
    Use ``periods_per_year = 252 * 390`` for regular-hours minute bars.

    Warm-up: null for the first ``n`` rows of each symbol (the first return is at row 1).

    Args:
        col: Column name or expression of positive prices.
        n: Number of returns in the window (>= 2).
        periods_per_year: Bars per year used to annualize (finite, > 0).
        by: Partition column(s); ``None`` treats the frame as one series.

    Returns:
        Expression aliased ``rv_{n}``.

    Raises:
        ValueError: If ``n`` < 2 or ``periods_per_year`` is not a finite positive number.
    """
    n = check_int("n", n, 2)
    scale = math.sqrt(check_positive("periods_per_year", periods_per_year))
    x = as_float(col)
    log_ret = (x / x.shift(1)).log()
    return per_symbol(log_ret.rolling_std(n, ddof=1) * scale, by).alias(f"rv_{n}")
