"""Compiled indicator and signal kernels shared by the equity strategies and the fast path.

The strategies' ``signals()`` and the fused sweep kernels call these same functions, so the fast
path sees bit-identical indicator values and therefore identical signals. The indicators are the
panel kernels of :mod:`strategies.indicators._kernels` on one column, so a family's
``panel_signals`` (all columns at once) equals its ``column_signals`` bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from strategies.indicators._kernels import ROC, RSI, SMA, one_column

# The 1-D kernels are the panel kernels' one-column forms, compiled in their own module: a
# cached njit function here calling a kernel of another file would keep a stale compiled copy
# after that file changed (numba's cache tracks only the caller's own file).


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average (NaN for the first ``window - 1`` bars), running-sum update."""
    return one_column(SMA, np.asarray(x, dtype=np.float64), window)


def rsi_wilder(x: np.ndarray, window: int) -> np.ndarray:
    """Wilder's RSI as TA-Lib computes it (NaN for the first ``window`` bars)."""
    return one_column(RSI, np.asarray(x, dtype=np.float64), window)


def rate_of_change(x: np.ndarray, lookback: int) -> np.ndarray:
    """``x[t] / x[t - lookback] - 1`` (NaN for the first ``lookback`` bars)."""
    return one_column(ROC, np.asarray(x, dtype=np.float64), lookback)


@njit(cache=True, nogil=True)
def _column(x: np.ndarray) -> np.ndarray:
    """A 1-D series as a contiguous (bars, 1) panel."""
    return np.ascontiguousarray(x).reshape((x.shape[0], 1))


@njit(cache=True, nogil=True)
def cross_panel(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of (bars, columns) ``a`` and ``b``: entries where ``a`` crosses above ``b``,
    exits where it crosses below (NaN never signals)."""
    entries = np.zeros(a.shape, dtype=np.bool_)
    exits = np.zeros(a.shape, dtype=np.bool_)
    for t in range(1, a.shape[0]):
        for j in range(a.shape[1]):
            entries[t, j] = a[t, j] > b[t, j] and a[t - 1, j] <= b[t - 1, j]
            exits[t, j] = a[t, j] < b[t, j] and a[t - 1, j] >= b[t - 1, j]
    return entries, exits


@njit(cache=True, nogil=True)
def cross_signals(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries where ``a`` crosses above ``b``, exits where it crosses below (NaN never signals)."""
    entries, exits = cross_panel(_column(a), _column(b))
    return entries[:, 0], exits[:, 0]


@njit(cache=True, nogil=True)
def band_signals(x: np.ndarray, lower: float, upper: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean-reversion bands: enter while ``x < lower``, exit while ``x > upper`` (any shape)."""
    return x < lower, x > upper


@njit(cache=True, nogil=True)
def momentum_panel(
    close: np.ndarray, roc: np.ndarray, trend: np.ndarray, enter: float, leave: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per column of (bars, columns) arrays: enter while ROC > ``enter`` and close is above
    ``trend``; exit while ROC < ``leave`` or close is below ``trend`` (a NaN-free ``trend`` of
    zeros disables the filter)."""
    entries = np.empty(close.shape, dtype=np.bool_)
    exits = np.empty(close.shape, dtype=np.bool_)
    for t in range(close.shape[0]):
        for j in range(close.shape[1]):
            entries[t, j] = roc[t, j] > enter and close[t, j] > trend[t, j]
            exits[t, j] = roc[t, j] < leave or close[t, j] < trend[t, j]
    return entries, exits


@njit(cache=True, nogil=True)
def momentum_signals(
    close: np.ndarray, roc: np.ndarray, trend: np.ndarray, enter: float, leave: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`momentum_panel` on one series."""
    entries, exits = momentum_panel(_column(close), _column(roc), _column(trend), enter, leave)
    return entries[:, 0], exits[:, 0]
