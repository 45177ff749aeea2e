"""TA-Lib-compatible indicators on numpy panels: one call computes every column of a
(bars, symbols) array, compiled and column-blocked (see :mod:`strategies.indicators._kernels`).

The polars expressions of :mod:`strategies.indicators` fit frames of bars; these fit the
(bars, columns) arrays the signal families and vectorbt use, and are what ``add_indicators``
runs underneath. Each function takes a 1-D series or a 2-D (bars, columns) array (numpy or
pandas), returns float64 numpy arrays of the same shape, NaN on the warm-up rows exactly where
TA-Lib returns NaN, and agrees with TA-Lib run column by column (``tests/strategies/
test_indicator_panel.py``). NaN inputs propagate, as in TA-Lib.

``threads`` splits the columns across that many threads (``None``: numba's
``get_num_threads()``). The default is 1: the kernels are memory-bound and take a few ms on
2,520 x 500, and two threads measured no faster on the 2-core machine (slower under load;
``benchmarks/bench_signal_library.py`` reports both). Results do not depend on it.

Example::

    from strategies.indicators import panel

    rsi14 = panel.rsi(close, 14)  # close: (2520, 500) -> (2520, 500)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from strategies.indicators import _kernels as k
from strategies.indicators._common import check_int, check_positive


def as_panel(values: Any, name: str = "close") -> np.ndarray:
    """``values`` as a C-contiguous float64 (bars, columns) array (1-D becomes one column)."""
    arr = values.to_numpy() if hasattr(values, "to_numpy") else values
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (bars, columns), got {arr.ndim} dimensions")
    return np.ascontiguousarray(arr)


def _shaped(out: np.ndarray, like: Any) -> np.ndarray:
    return out[:, 0] if np.ndim(like) == 1 else out


def _hlc(high: Any, low: Any, close: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, lo, c = as_panel(high, "high"), as_panel(low, "low"), as_panel(close, "close")
    if not h.shape == lo.shape == c.shape:
        raise ValueError(
            f"high, low and close must have one shape, got {h.shape}, {lo.shape}, {c.shape}"
        )
    return h, lo, c


def _one_output(kernel: Any, close: Any, *params: Any, threads: int | None) -> np.ndarray:
    x = as_panel(close)
    out = np.empty_like(x)
    k.run_blocks(kernel, x.shape[1], x, *params, out, threads=threads)
    return _shaped(out, close)


def sma(close: Any, n: int, *, threads: int | None = 1) -> np.ndarray:
    """Simple moving average, as ``talib.SMA`` (NaN for the first ``n - 1`` rows)."""
    n = check_int("n", n, 1)
    return _one_output(k.sma_block, close, n, threads=threads)


def ema(close: Any, n: int, *, threads: int | None = 1) -> np.ndarray:
    """Exponential moving average, as ``talib.EMA``: ``alpha = 2 / (n + 1)``, seeded at row
    ``n - 1`` with the SMA of the first ``n`` values (NaN before)."""
    n = check_int("n", n, 1)
    return _one_output(k.ema_block, close, n, 2.0 / (n + 1), n - 1, threads=threads)


def macd(
    close: Any, fast: int = 12, slow: int = 26, signal: int = 9, *, threads: int | None = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line, signal and histogram, as ``talib.MACD`` (its seeding quirks included; all
    three NaN for the first ``slow + signal - 2`` rows)."""
    fast, slow = check_int("fast", fast, 1), check_int("slow", slow, 1)
    signal = check_int("signal", signal, 1)
    if fast >= slow:
        raise ValueError(f"fast must be < slow, got fast={fast}, slow={slow}")
    x = as_panel(close)
    line, sig, hist = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    k.run_blocks(k.macd_block, x.shape[1], x, fast, slow, signal, line, sig, hist, threads=threads)
    return _shaped(line, close), _shaped(sig, close), _shaped(hist, close)


def rsi(close: Any, n: int = 14, *, threads: int | None = 1) -> np.ndarray:
    """Wilder's RSI, as ``talib.RSI`` (NaN for the first ``n`` rows; 0 over a flat stretch)."""
    n = check_int("n", n, 1)
    return _one_output(k.rsi_block, close, n, threads=threads)


def bollinger(
    close: Any, n: int = 20, nbdev: float = 2.0, *, threads: int | None = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper, middle and lower band, as ``talib.BBANDS(close, n, nbdev, nbdev, matype=0)``:
    SMA middle, population std (NaN for the first ``n - 1`` rows)."""
    n = check_int("n", n, 1)
    nbdev = check_positive("nbdev", nbdev)
    x = as_panel(close)
    upper, middle, lower = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    args = (x, n, 0, 0, k.TA_EPSILON, nbdev, True, upper, middle, lower)
    k.run_blocks(k.rolling_std_block, x.shape[1], *args, threads=threads)
    return _shaped(upper, close), _shaped(middle, close), _shaped(lower, close)


def true_range(high: Any, low: Any, close: Any, *, threads: int | None = 1) -> np.ndarray:
    """True range, as ``talib.TRANGE`` (NaN on the first row)."""
    h, lo, c = _hlc(high, low, close)
    out = np.empty_like(c)
    k.run_blocks(k.true_range_block, c.shape[1], h, lo, c, out, threads=threads)
    return _shaped(out, close)


def atr(high: Any, low: Any, close: Any, n: int = 14, *, threads: int | None = 1) -> np.ndarray:
    """Average true range with Wilder smoothing, as ``talib.ATR`` (NaN for the first ``n``)."""
    n = check_int("n", n, 1)
    h, lo, c = _hlc(high, low, close)
    out = np.empty_like(c)
    k.run_blocks(k.atr_block, c.shape[1], h, lo, c, n, out, threads=threads)
    return _shaped(out, close)


def rate_of_change(close: Any, n: int, *, threads: int | None = 1) -> np.ndarray:
    """``close[t] / close[t - n] - 1``: ``talib.ROCR`` minus one (NaN for the first ``n``)."""
    n = check_int("n", n, 1)
    return _one_output(k.roc_block, close, n, threads=threads)


def realized_vol(
    close: Any, n: int = 20, periods_per_year: float = 252, *, threads: int | None = 1
) -> np.ndarray:
    """Annualized realized volatility: rolling sample std (ddof=1) of ``n`` log returns times
    ``sqrt(periods_per_year)`` (NaN for the first ``n`` rows). No TA-Lib function; equals
    ``talib.STDDEV(log returns, n) * sqrt(n / (n - 1))`` and pandas' rolling std."""
    n = check_int("n", n, 2)
    scale = math.sqrt(check_positive("periods_per_year", periods_per_year))
    x = as_panel(close)
    out = np.empty_like(x)
    out[:1] = 0.0  # row 0 has no return
    np.log(np.divide(x[1:], x[:-1], out=out[1:]), out=out[1:])  # SIMD log, into the output
    # Windows of n returns start at row 1; sample std, no zero band; in place over the returns.
    args = (out, n, 1, 1, 0.0, scale, False, out, out, out)
    k.run_blocks(k.rolling_std_block, x.shape[1], *args, threads=threads)
    return _shaped(out, close)


__all__ = [
    "as_panel",
    "atr",
    "bollinger",
    "ema",
    "macd",
    "rate_of_change",
    "realized_vol",
    "rsi",
    "sma",
    "true_range",
]
