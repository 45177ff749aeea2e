"""Shared building blocks: argument checks, per-symbol windows and TA-Lib-seeded smoothing."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import polars as pl

ColumnLike = str | pl.Expr
PartitionBy = str | Sequence[str] | None

# TA-Lib's TA_EPSILON (ta_utility.h, C library 0.6+): the band inside which it treats a value as 0.
TA_EPSILON = 1e-14


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``, else raise naming ``name``.

    NumPy integers (e.g. from a parameter grid) are accepted; bools and floats are not.
    """
    # bool is an int subclass; `n=True` is always a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_positive(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def as_float(col: ColumnLike) -> pl.Expr:
    """A column name or expression as a Float64 expression (volume may arrive as Int64)."""
    expr = pl.col(col) if isinstance(col, str) else col
    return expr.cast(pl.Float64)


def per_symbol(expr: pl.Expr, by: PartitionBy) -> pl.Expr:
    """Evaluate ``expr`` separately for each partition (``None``: the frame is one series)."""
    if by is None:
        return expr
    keys = [by] if isinstance(by, str) else list(by)
    return expr.over(keys)


def row_index(by: PartitionBy) -> pl.Expr:
    """0-based row number within each partition."""
    return per_symbol(pl.int_range(pl.len()), by)


def seeded_ewm(x: pl.Expr, *, window: int, alpha: float, seed_at: int, by: PartitionBy) -> pl.Expr:
    """Recursive exponential smoothing seeded the way TA-Lib seeds it.

    Row ``seed_at`` holds the simple mean of the ``window`` values of ``x`` ending there; every
    later row is ``y[t] = y[t-1] + alpha * (x[t] - y[t-1])``; earlier rows are null. This is
    TA-Lib's EMA (``alpha = 2 / (n + 1)``) and Wilder smoothing (``alpha = 1 / n``, RSI and ATR).
    Causal: row ``t`` reads rows ``<= t`` only.

    The result is already partitioned (``.over(by)``); combine such pieces outside any window so
    that polars' common-subexpression elimination (lazy mode) computes each piece once.

    Args:
        x: Input series, non-null from ``seed_at - window + 1`` on.
        window: Length of the seeding mean.
        alpha: Smoothing factor in (0, 1].
        seed_at: Row (within the partition) of the first output value.
        by: Partition column(s); ``None`` treats the frame as one series.

    Returns:
        The smoothed expression.
    """
    i = pl.int_range(pl.len())
    seeded = pl.when(i == seed_at).then(x.rolling_mean(window)).when(i > seed_at).then(x)
    # adjust=False is the plain recursion; leading nulls are skipped, so it starts at the seed.
    return per_symbol(seeded.ewm_mean(alpha=alpha, adjust=False, min_samples=1), by)
