"""Moving averages and MACD, TA-Lib compatible (SMA, EMA, MACD)."""

from __future__ import annotations

from typing import NamedTuple

import polars as pl

from strategies.indicators._common import (
    ColumnLike,
    PartitionBy,
    as_float,
    check_int,
    per_symbol,
    row_index,
    seeded_ewm,
)


class MACD(NamedTuple):
    """The three MACD expressions; a tuple, so ``df.with_columns(*macd("close"))`` works."""

    macd: pl.Expr
    signal: pl.Expr
    hist: pl.Expr


def sma(col: ColumnLike, n: int, *, by: PartitionBy = "symbol") -> pl.Expr:
    """Simple moving average, as ``talib.SMA``.

    Warm-up: null for the first ``n - 1`` rows of each symbol.

    Args:
        col: Column name or expression.
        n: Window length (>= 1).
        by: Partition column(s); ``None`` treats the frame as one series.

    Returns:
        Expression aliased ``sma_{n}``.

    Raises:
        ValueError: If ``n`` < 1.
    """
    n = check_int("n", n, 1)
    return per_symbol(as_float(col).rolling_mean(n), by).alias(f"sma_{n}")


def ema(col: ColumnLike, n: int, *, by: PartitionBy = "symbol") -> pl.Expr:
    """Exponential moving average, as ``talib.EMA``.

    ``alpha = 2 / (n + 1)``, seeded at row ``n - 1`` with the SMA of the first ``n`` values.

    Warm-up: null for the first ``n - 1`` rows of each symbol.

    Args:
        col: Column name or expression.
        n: Period (>= 1).
        by: Partition column(s); ``None`` treats the frame as one series.

    Returns:
        Expression aliased ``ema_{n}``.

    Raises:
        ValueError: If ``n`` < 1.
    """
    n = check_int("n", n, 1)
    x = as_float(col)
    return seeded_ewm(x, window=n, alpha=2.0 / (n + 1), seed_at=n - 1, by=by).alias(f"ema_{n}")


def _macd_parts(
    x: pl.Expr, fast: int, slow: int, signal: int, by: PartitionBy
) -> tuple[pl.Expr, pl.Expr]:
    # TA-Lib quirk: both EMAs start at row slow-1; the fast one is seeded there with the mean of
    # the `fast` values ending at slow-1 (not at row fast-1 as a standalone EMA would be).
    def ema_gap(by: PartitionBy) -> pl.Expr:
        fast_ema = seeded_ewm(x, window=fast, alpha=2.0 / (fast + 1), seed_at=slow - 1, by=by)
        slow_ema = seeded_ewm(x, window=slow, alpha=2.0 / (slow + 1), seed_at=slow - 1, by=by)
        return fast_ema - slow_ema

    start = slow + signal - 2
    # The signal smooths the unpartitioned difference inside its own window (no nested windows).
    sig = seeded_ewm(ema_gap(None), window=signal, alpha=2.0 / (signal + 1), seed_at=start, by=by)
    # TA-Lib hides the MACD line until the signal line exists.
    line = pl.when(row_index(by) >= start).then(ema_gap(by))
    return line, sig


def macd(
    col: ColumnLike,
    fast: int = 12,
    slow: int = 26,
    signal: int = 9,
    *,
    by: PartitionBy = "symbol",
) -> MACD:
    """MACD line, signal line and histogram, as ``talib.MACD`` (seeding quirks included).

    The fast and slow EMAs both begin at row ``slow - 1``, each seeded with the SMA of its own
    window ending there; the signal is an EMA of the MACD line seeded with the SMA of its first
    ``signal`` values; ``hist = macd - signal``.

    Warm-up: all three are null for the first ``slow + signal - 2`` rows of each symbol (TA-Lib
    also blanks the MACD line there, although it could be computed from row ``slow - 1``).

    Args:
        col: Column name or expression.
        fast: Fast EMA period (>= 1).
        slow: Slow EMA period (> fast).
        signal: Signal EMA period (>= 1).
        by: Partition column(s); ``None`` treats the frame as one series.

    Returns:
        ``MACD(macd, signal, hist)`` aliased ``macd``, ``macd_signal``, ``macd_hist``.

    Raises:
        ValueError: If a period is < 1 or ``fast >= slow``.
    """
    fast = check_int("fast", fast, 1)
    slow = check_int("slow", slow, 1)
    signal = check_int("signal", signal, 1)
    if fast >= slow:
        raise ValueError(f"fast must be < slow, got fast={fast}, slow={slow}")
    line, sig = _macd_parts(as_float(col), fast, slow, signal, by)
    return MACD(
        macd=line.alias("macd"),
        signal=sig.alias("macd_signal"),
        hist=(line - sig).alias("macd_hist"),
    )
