"""Compiled, column-blocked indicator kernels on (bars, columns) float64 panels.

Every kernel fills ``out[:, lo:hi]`` from ``x[:, lo:hi]`` walking time in the outer loop and the
columns of the block in the inner loop: a C-contiguous (bars, columns) panel is read row by row
(cache-friendly) and the inner loop has no dependency between columns, so LLVM vectorizes it
(several symbols per instruction) where TA-Lib's per-series recursion cannot. Each column's
arithmetic is the scalar recursion of TA-Lib (same seeds, same update order), so a column equals
the 1-D result bit for bit whatever the block. Kernels release the GIL; :func:`run_blocks` splits
the columns across threads (``threads`` as in :mod:`strategies.backtest.signal_fastpath`).

Warm-up rows are NaN exactly where TA-Lib returns NaN.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numba import get_num_threads, njit

# TA-Lib's TA_EPSILON (ta_utility.h): it treats |v| < 1e-14 as zero (RSI's 0/0, BBANDS' variance).
TA_EPSILON = 1e-14


def run_blocks(kernel: Any, n_cols: int, *args: Any, threads: int | None = None) -> None:
    """Call ``kernel(*args, lo, hi)`` over column blocks covering ``0..n_cols``.

    ``threads`` (default numba's ``get_num_threads()``) blocks: the calling thread runs the first,
    a thread pool the others; 1 runs the whole panel on the calling thread.
    """
    threads = max(1, min(threads or get_num_threads(), n_cols))
    if threads == 1:
        kernel(*args, 0, n_cols)
        return
    bounds = np.linspace(0, n_cols, threads + 1).astype(np.int64)
    with ThreadPoolExecutor(threads - 1) as pool:
        rest = pool.map(lambda k: kernel(*args, bounds[k], bounds[k + 1]), range(1, threads))
        kernel(*args, bounds[0], bounds[1])  # the calling thread takes the first block
        list(rest)


@njit(cache=True, nogil=True)
def sma_block(x, w, out, lo, hi):  # noqa: ANN001, ANN201
    """Simple moving average: running-sum update, first value at row ``w - 1``."""
    n = x.shape[0]
    out[: min(w - 1, n), lo:hi] = np.nan
    if w > n:
        return
    acc = np.zeros(hi - lo)
    for t in range(w):
        for j in range(lo, hi):
            acc[j - lo] += x[t, j]
    for j in range(lo, hi):
        out[w - 1, j] = acc[j - lo] / w
    for t in range(w, n):
        for j in range(lo, hi):
            acc[j - lo] += x[t, j] - x[t - w, j]
            out[t, j] = acc[j - lo] / w


@njit(cache=True, nogil=True)
def ema_block(x, w, alpha, seed_at, out, lo, hi):  # noqa: ANN001, ANN201
    """TA-Lib's seeded EMA: the mean of the ``w`` values ending at ``seed_at``, then
    ``y = (x - y) * alpha + y``; NaN before ``seed_at``."""
    n = x.shape[0]
    out[: min(seed_at, n), lo:hi] = np.nan
    if seed_at >= n:
        return
    y = np.zeros(hi - lo)
    for t in range(seed_at - w + 1, seed_at + 1):
        for j in range(lo, hi):
            y[j - lo] += x[t, j]
    for j in range(lo, hi):
        y[j - lo] /= w
        out[seed_at, j] = y[j - lo]
    for t in range(seed_at + 1, n):
        for j in range(lo, hi):
            y[j - lo] = (x[t, j] - y[j - lo]) * alpha + y[j - lo]
            out[t, j] = y[j - lo]


@njit(cache=True, nogil=True)
def macd_block(x, fast, slow, signal, line, sig, hist, lo, hi):  # noqa: ANN001, ANN201
    """TA-Lib's MACD in one pass: both EMAs seeded at row ``slow - 1`` (each with the mean of its
    own window ending there), the signal EMA seeded with the mean of the first ``signal`` MACD
    values; all three NaN before row ``slow + signal - 2``."""
    n = x.shape[0]
    s0, start = slow - 1, slow + signal - 2
    for out in (line, sig, hist):
        out[: min(start, n), lo:hi] = np.nan
    if start >= n:
        return
    kf, ks, kg = 2.0 / (fast + 1), 2.0 / (slow + 1), 2.0 / (signal + 1)
    m = hi - lo
    f, s, g = np.zeros(m), np.zeros(m), np.zeros(m)
    for t in range(s0 + 1):
        for j in range(lo, hi):
            s[j - lo] += x[t, j]
            if t > s0 - fast:
                f[j - lo] += x[t, j]
    for j in range(lo, hi):
        f[j - lo] /= fast
        s[j - lo] /= slow
        g[j - lo] = f[j - lo] - s[j - lo]
    for t in range(s0 + 1, start + 1):
        for j in range(lo, hi):
            f[j - lo] = (x[t, j] - f[j - lo]) * kf + f[j - lo]
            s[j - lo] = (x[t, j] - s[j - lo]) * ks + s[j - lo]
            g[j - lo] += f[j - lo] - s[j - lo]
    for j in range(lo, hi):
        g[j - lo] /= signal
        line[start, j] = f[j - lo] - s[j - lo]
        sig[start, j] = g[j - lo]
        hist[start, j] = line[start, j] - g[j - lo]
    for t in range(start + 1, n):
        for j in range(lo, hi):
            f[j - lo] = (x[t, j] - f[j - lo]) * kf + f[j - lo]
            s[j - lo] = (x[t, j] - s[j - lo]) * ks + s[j - lo]
            d = f[j - lo] - s[j - lo]
            g[j - lo] = (d - g[j - lo]) * kg + g[j - lo]
            line[t, j] = d
            sig[t, j] = g[j - lo]
            hist[t, j] = d - g[j - lo]


@njit(cache=True, nogil=True)
def _rsi_value(gain: float, loss: float) -> float:
    total = gain + loss
    return 0.0 if abs(total) < TA_EPSILON else 100.0 * gain / total


@njit(cache=True, nogil=True)
def rsi_block(x, w, out, lo, hi):  # noqa: ANN001, ANN201
    """Wilder's RSI as TA-Lib computes it: first value at row ``w`` from the plain means of the
    first ``w`` changes, then ``avg = (avg * (w - 1) + change) / w``; 0 when both averages are
    (near) zero."""
    n = x.shape[0]
    out[: min(w, n), lo:hi] = np.nan
    if w >= n:
        return
    gain, loss = np.zeros(hi - lo), np.zeros(hi - lo)
    for t in range(1, w + 1):
        for j in range(lo, hi):
            d = x[t, j] - x[t - 1, j]
            gain[j - lo] += d if d > 0 else 0.0
            loss[j - lo] -= d if d <= 0 else 0.0
    for j in range(lo, hi):
        gain[j - lo] /= w
        loss[j - lo] /= w
        out[w, j] = _rsi_value(gain[j - lo], loss[j - lo])
    for t in range(w + 1, n):
        for j in range(lo, hi):
            d = x[t, j] - x[t - 1, j]
            gain[j - lo] = (gain[j - lo] * (w - 1) + (d if d > 0 else 0.0)) / w
            loss[j - lo] = (loss[j - lo] * (w - 1) + (-d if d < 0 else 0.0)) / w
            out[t, j] = _rsi_value(gain[j - lo], loss[j - lo])


@njit(cache=True, nogil=True)
def _true_range(h: float, lo: float, prev: float) -> float:
    # TA-Lib's TRANGE: the widest of high-low, |prev close - high| and |prev close - low|.
    widest = h - lo
    up, down = abs(prev - h), abs(prev - lo)
    if up > widest:
        widest = up
    if down > widest:
        widest = down
    return widest


@njit(cache=True, nogil=True)
def true_range_block(high, low, close, out, lo, hi):  # noqa: ANN001, ANN201
    """True range from row 1 (NaN on row 0, which has no previous close)."""
    out[:1, lo:hi] = np.nan
    for t in range(1, high.shape[0]):
        for j in range(lo, hi):
            out[t, j] = _true_range(high[t, j], low[t, j], close[t - 1, j])


@njit(cache=True, nogil=True)
def atr_block(high, low, close, w, out, lo, hi):  # noqa: ANN001, ANN201
    """TA-Lib's ATR: the mean of the true ranges of rows ``1..w`` at row ``w``, then
    ``atr = (atr * (w - 1) + tr) / w``."""
    n = high.shape[0]
    out[: min(w, n), lo:hi] = np.nan
    if w >= n:
        return
    a = np.zeros(hi - lo)
    for t in range(1, w + 1):
        for j in range(lo, hi):
            a[j - lo] += _true_range(high[t, j], low[t, j], close[t - 1, j])
    for j in range(lo, hi):
        a[j - lo] /= w
        out[w, j] = a[j - lo]
    for t in range(w + 1, n):
        for j in range(lo, hi):
            tr = _true_range(high[t, j], low[t, j], close[t - 1, j])
            a[j - lo] = (a[j - lo] * (w - 1) + tr) / w
            out[t, j] = a[j - lo]


@njit(cache=True, nogil=True)
def _ring_m2(ring, mean, dev):  # noqa: ANN001, ANN202
    """Exact mean (``mean``) and two-pass sum of squared deviations (``dev``) of the window held
    in ``ring`` (one row per bar)."""
    w = ring.shape[0]
    mean[:] = 0.0
    dev[:] = 0.0
    for i in range(w):
        for j in range(ring.shape[1]):
            mean[j] += ring[i, j]
    for j in range(ring.shape[1]):
        mean[j] /= w
    for i in range(w):
        for j in range(ring.shape[1]):
            d = ring[i, j] - mean[j]
            dev[j] += d * d


@njit(cache=True, nogil=True)
def rolling_std_block(x, w, first, ddof, eps, k, bands, upper, middle, lower, lo, hi):  # noqa: ANN001, ANN201, E501
    """Rolling mean and std of the ``w`` rows ending at each row from ``first + w - 1`` on
    (earlier rows NaN): ``middle`` the mean, ``upper``/``lower`` = mean +/- ``k`` * std, where
    std = sqrt(M2 / (w - ddof)), 0 when the variance is below ``eps``. Without ``bands``,
    ``upper`` is just ``k`` * std (``middle`` and ``lower`` are not written) and may be ``x``
    itself (the window lives in a ring buffer, so the kernel can run in place).

    ``middle`` is the running sum over ``w`` (TA-Lib's SMA, bit for bit with :func:`sma_block`).
    M2 is updated as one value leaves and one enters (around its own mean) and recomputed
    exactly (two-pass, mean re-summed) every ``w`` rows, so rounding cannot pile up over a long
    series: it stays about as close to the exact std as TA-Lib's running sum of squares, and
    closer when the level is large and the variance small."""
    n = x.shape[0]
    top = first + w - 1
    m = hi - lo
    acc, mean, dev = np.zeros(m), np.empty(m), np.empty(m)
    ring = np.empty((w, m))  # ring[(t - first) % w] holds row t of the current window
    for t in range(first, min(top + 1, n)):
        for j in range(lo, hi):
            ring[t - first, j - lo] = x[t, j]
            acc[j - lo] += x[t, j]
    upper[: min(top, n), lo:hi] = np.nan  # after reading: upper may be x
    if bands:
        middle[: min(top, n), lo:hi] = np.nan
        lower[: min(top, n), lo:hi] = np.nan
    if top >= n:
        return
    inv_w, inv_den = 1.0 / w, 1.0 / (w - ddof)
    for t in range(top, n):
        slot = (t - first) % w
        reset = (t - top) % w == 0
        if t > top:
            for j in range(lo, hi):
                new, old = x[t, j], ring[slot, j - lo]
                step = new - old
                acc[j - lo] += step
                ring[slot, j - lo] = new
                if not reset:
                    fresh = mean[j - lo] + step * inv_w
                    d = dev[j - lo] + step * (new - fresh + old - mean[j - lo])
                    mean[j - lo] = fresh
                    dev[j - lo] = max(d, 0.0)  # rounding can dip below 0 on a flat stretch
        if reset:
            _ring_m2(ring, mean, dev)
        for j in range(lo, hi):
            var = dev[j - lo] * inv_den
            width = k * math.sqrt(var) if var >= eps else 0.0
            if bands:
                sma = acc[j - lo] / w
                middle[t, j] = sma
                upper[t, j] = sma + width
                lower[t, j] = sma - width
            else:
                upper[t, j] = width


@njit(cache=True, nogil=True)
def roc_block(x, lookback, out, lo, hi):  # noqa: ANN001, ANN201
    """``x[t] / x[t - lookback] - 1`` (TA-Lib's ROCR minus one), NaN for ``lookback`` rows."""
    n = x.shape[0]
    out[: min(lookback, n), lo:hi] = np.nan
    for t in range(lookback, n):
        for j in range(lo, hi):
            out[t, j] = x[t, j] / x[t - lookback, j] - 1.0


SMA, RSI, ROC = 0, 1, 2  # the one-column kernels of one_column


@njit(cache=True, nogil=True)
def one_column(kind, x, w):  # noqa: ANN001, ANN201
    """The ``kind`` kernel (``SMA``: :func:`sma_block`, ``RSI``: :func:`rsi_block`, ``ROC``:
    :func:`roc_block`) on one 1-D series, compiled end to end so per-series callers pay one
    dispatch."""
    col = np.ascontiguousarray(x).reshape((x.shape[0], 1))
    out = np.empty_like(col)
    if kind == SMA:
        sma_block(col, w, out, 0, 1)
    elif kind == RSI:
        rsi_block(col, w, out, 0, 1)
    else:
        roc_block(col, w, out, 0, 1)
    return out[:, 0]
