"""Shared input handling for the analytics package (private)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import polars as pl

DAILY = "daily"
WEEKLY = "weekly"
MONTHLY = "monthly"

#: Periods per year, as empyrical defines them (252 trading days, not 365 calendar days).
ANNUALIZATION_FACTORS: dict[str, int] = {DAILY: 252, WEEKLY: 52, MONTHLY: 12}


def annualization_factor(period: str, annualization: float | None) -> float:
    """Return the number of periods per year.

    Args:
        period: One of ``'daily'``, ``'weekly'``, ``'monthly'``; ignored when
            ``annualization`` is given.
        annualization: Explicit periods per year, overriding ``period``.

    Returns:
        The annualization factor.

    Raises:
        ValueError: If ``period`` is unknown and no ``annualization`` is given.
    """
    if annualization is not None:
        return annualization
    try:
        return ANNUALIZATION_FACTORS[period]
    except KeyError:
        choices = "', '".join(ANNUALIZATION_FACTORS)
        raise ValueError(
            f"period must be one of '{choices}' (got {period!r}); "
            "or pass annualization=<periods per year>"
        ) from None


def as_float_array(values: Any, name: str = "returns") -> np.ndarray:
    """Convert a numpy array, pandas Series, polars Series or sequence to a 1-D float array.

    Args:
        values: The input series.
        name: Argument name used in error messages.

    Returns:
        A 1-D ``float64`` array (a copy when a conversion was needed).

    Raises:
        ValueError: If the input is not one-dimensional.
    """
    if isinstance(values, pl.Series):
        arr = values.cast(pl.Float64).to_numpy()
    elif isinstance(values, (pd.Series, pd.Index)):
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be one-dimensional (a numpy array or a pandas/polars Series); "
            f"got shape {arr.shape}. Evaluate one column at a time."
        )
    return arr


def as_float_matrix(values: Any, name: str) -> np.ndarray:
    """Convert 1-D or 2-D (periods x assets) input to a 2-D float array.

    Args:
        values: Array, pandas Series/DataFrame or polars Series/DataFrame.
        name: Argument name used in error messages.

    Returns:
        A 2-D ``float64`` array with one row per period.

    Raises:
        ValueError: If the input has more than two dimensions.
    """
    if isinstance(values, (pl.Series, pl.DataFrame)):
        values = values.to_numpy()
    elif isinstance(values, (pd.Series, pd.DataFrame)):
        values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        return arr[:, np.newaxis]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (periods x assets); got shape {arr.shape}")
    return arr


def finite_or_nan(values: np.ndarray) -> np.ndarray:
    """Return ``values`` without NaNs (infinite values are kept)."""
    return values[~np.isnan(values)]


def wrap_like(template: Any, values: np.ndarray) -> Any:
    """Return ``values`` in the container type of ``template`` (pandas/polars/numpy).

    Args:
        template: The caller's original input.
        values: A 1-D array with one value per element of ``template``.

    Returns:
        A pandas Series (same index and name), a polars Series (same name) or the array.
    """
    if isinstance(template, pd.Series):
        return pd.Series(values, index=template.index, name=template.name)
    if isinstance(template, pl.Series):
        return pl.Series(template.name, values)
    return values
