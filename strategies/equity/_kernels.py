"""Compiled indicator and signal kernels shared by the equity strategies and the fast path.

The strategies' ``signals()`` and the fused sweep kernels call these same functions, so the fast
path sees bit-identical indicator values and therefore identical signals.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average (NaN for the first ``window - 1`` bars), running-sum update."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if window > n:
        return out
    acc = 0.0
    for t in range(window):
        acc += x[t]
    out[window - 1] = acc / window
    for t in range(window, n):
        acc += x[t] - x[t - window]
        out[t] = acc / window
    return out


@njit(cache=True, nogil=True)
def rsi_wilder(x: np.ndarray, window: int) -> np.ndarray:
    """Wilder's RSI as TA-Lib computes it (NaN for the first ``window`` bars)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if window >= n:
        return out
    gain = 0.0
    loss = 0.0
    for t in range(1, window + 1):
        d = x[t] - x[t - 1]
        if d > 0:
            gain += d
        else:
            loss -= d
    gain /= window
    loss /= window
    out[window] = 0.0 if gain + loss == 0 else 100.0 * gain / (gain + loss)
    for t in range(window + 1, n):
        d = x[t] - x[t - 1]
        gain = (gain * (window - 1) + (d if d > 0 else 0.0)) / window
        loss = (loss * (window - 1) + (-d if d < 0 else 0.0)) / window
        out[t] = 0.0 if gain + loss == 0 else 100.0 * gain / (gain + loss)
    return out


@njit(cache=True, nogil=True)
def rate_of_change(x: np.ndarray, lookback: int) -> np.ndarray:
    """``x[t] / x[t - lookback] - 1`` (NaN for the first ``lookback`` bars)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    for t in range(lookback, n):
        out[t] = x[t] / x[t - lookback] - 1.0
    return out


@njit(cache=True, nogil=True)
def cross_signals(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries where ``a`` crosses above ``b``, exits where it crosses below (NaN never signals)."""
    n = a.shape[0]
    entries = np.zeros(n, dtype=np.bool_)
    exits = np.zeros(n, dtype=np.bool_)
    for t in range(1, n):
        entries[t] = a[t] > b[t] and a[t - 1] <= b[t - 1]
        exits[t] = a[t] < b[t] and a[t - 1] >= b[t - 1]
    return entries, exits


@njit(cache=True, nogil=True)
def band_signals(x: np.ndarray, lower: float, upper: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean-reversion bands: enter while ``x < lower``, exit while ``x > upper``."""
    return x < lower, x > upper


@njit(cache=True, nogil=True)
def momentum_signals(
    close: np.ndarray, roc: np.ndarray, trend: np.ndarray, enter: float, leave: float
) -> tuple[np.ndarray, np.ndarray]:
    """Enter while ROC > ``enter`` and close is above ``trend``; exit while ROC < ``leave`` or close
    is below ``trend`` (pass a NaN-free ``trend`` of zeros to disable the filter)."""
    n = close.shape[0]
    entries = np.zeros(n, dtype=np.bool_)
    exits = np.zeros(n, dtype=np.bool_)
    for t in range(n):
        entries[t] = roc[t] > enter and close[t] > trend[t]
        exits[t] = roc[t] < leave or close[t] < trend[t]
    return entries, exits
