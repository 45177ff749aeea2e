"""Fused, compiled grid sweeps of the built-in equity signal strategies (each family's
``sweep_fast_path`` calls its kernel here; a family without one is re-simulated from its own
signals by :func:`simulate_signals`).

Each kernel computes the indicator tables once per symbol, then for every (combination, symbol)
derives the signals bar by bar and runs the position state machine of vectorbt 1.0's
``Portfolio.from_signals(close, entries, exits, fees=, slippage=, init_cash=)`` with its defaults:
long only, ``size=np.inf`` (all cash, fees on notional, ``cash / (1 + fees)`` invested), fills at
the close with ``price * (1 +/- slippage)``, no accumulation (an entry while long is ignored), an
entry and exit on the same bar cancel (``upon_long_conflict='ignore'``), and orders below
``min_size=1e-8`` rejected. Total return is computed as vectorbt does (cash flows of the order
records plus the final position at the last close, over ``init_cash``), including its
tolerance-aware additions, so results agree to ~1e-15. vectorbt stays the reference engine
(``tests/strategies/test_signal_fastpath.py`` compares the two on a grid).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import polars as pl
from numba import get_num_threads

from strategies.backtest._signal_kernels import (
    _band_kernel,
    _cross_kernel,
    _momentum_kernel,
    _signal_kernel,
)
from strategies.equity._kernels import rate_of_change, rolling_mean, rsi_wilder
from strategies.equity.signal import as_2d


def _run(kernel: Any, jobs: int, *args: Any, threads: int | None = None) -> None:
    """Run ``kernel(lo, hi, *args)`` over ``jobs`` split across threads (kernels release the GIL;
    threads default to numba's ``get_num_threads()``)."""
    threads = max(1, min(threads or get_num_threads(), jobs))
    if threads == 1:
        kernel(0, jobs, *args)
        return
    bounds = np.linspace(0, jobs, threads + 1).astype(np.int64)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: kernel(bounds[k], bounds[k + 1], *args), range(threads)))


def _prices(close: Any) -> tuple[np.ndarray, list[str]]:
    arr = as_2d(close)
    if arr.shape[0] < 2:
        raise ValueError("close needs at least 2 bars")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError("close must be finite and > 0 everywhere (fill or drop gaps first)")
    names = [str(c) for c in close.columns] if hasattr(close, "columns") else None
    names = names or [str(j) for j in range(arr.shape[1])]
    return np.ascontiguousarray(arr.T), names


def _check_costs(fees: float, slippage: float, init_cash: float) -> None:
    if not (np.isfinite(fees) and fees >= 0):
        raise ValueError(f"fees must be finite and >= 0, got {fees}")
    if not (np.isfinite(slippage) and slippage >= 0):
        raise ValueError(f"slippage must be finite and >= 0, got {slippage}")
    if not (np.isfinite(init_cash) and init_cash > 0):
        raise ValueError(f"init_cash must be > 0, got {init_cash}")


def _table(close_t: np.ndarray, windows: Sequence[int], fn: Any) -> np.ndarray:
    out = np.empty((close_t.shape[0], len(windows), close_t.shape[1]))
    for j in range(close_t.shape[0]):
        for k, w in enumerate(windows):
            out[j, k] = fn(close_t[j], int(w))
    return out


def _frame(
    params: dict[str, Any], names: list[str], ret: np.ndarray, trades: np.ndarray
) -> pl.DataFrame:
    n_combo, n_sym = ret.shape
    cols: dict[str, Any] = {"symbol": np.tile(np.array(names, dtype=object), n_combo)}
    cols |= {k: np.repeat(np.asarray(v), n_sym) for k, v in params.items()}
    return pl.DataFrame(cols | {"total_return": ret.ravel(), "trades": trades.ravel()})


def ma_pairs(fast: Iterable[int], slow: Iterable[int]) -> list[tuple[int, int]]:
    """All valid (fast, slow) pairs of two window lists (fast < slow), fast-major order."""
    slow = list(slow)
    return [(int(f), int(s)) for f in fast for s in slow if 1 <= f < s]


def ma_crossover_sweep(
    close: Any,
    pairs: Sequence[tuple[int, int]],
    *,
    fees: float = 0.0,
    slippage: float = 0.0,
    init_cash: float = 100.0,
    threads: int | None = None,
) -> pl.DataFrame:
    """Total return and trade count of :class:`~strategies.equity.MACrossover` for every
    (fast, slow) pair and symbol (columns of ``close``), as vectorbt's ``from_signals``.

    Returns:
        One row per (pair, symbol): ``symbol, fast, slow, total_return, trades``.
    """
    _check_costs(fees, slippage, init_cash)
    bad = [p for p in pairs if not 1 <= p[0] < p[1]]
    if bad:
        raise ValueError(f"invalid (fast, slow) pairs (need 1 <= fast < slow): {bad[:5]}")
    close_t, names = _prices(close)
    windows = sorted({w for p in pairs for w in p})
    index = {w: k for k, w in enumerate(windows)}
    table = _table(close_t, windows, rolling_mean)
    fast = np.array([index[p[0]] for p in pairs], dtype=np.int64)
    slow = np.array([index[p[1]] for p in pairs], dtype=np.int64)
    ret = np.empty((len(pairs), close_t.shape[0]))
    trades = np.empty((len(pairs), close_t.shape[0]), dtype=np.int64)
    _run(
        _cross_kernel,
        ret.size,
        close_t,
        table,
        fast,
        slow,
        fees,
        slippage,
        init_cash,
        ret,
        trades,
        threads=threads,
    )
    params = {"fast": [p[0] for p in pairs], "slow": [p[1] for p in pairs]}
    return _frame(params, names, ret, trades)


def rsi_reversion_sweep(
    close: Any,
    combos: Sequence[tuple[int, float, float]],
    *,
    fees: float = 0.0,
    slippage: float = 0.0,
    init_cash: float = 100.0,
    threads: int | None = None,
) -> pl.DataFrame:
    """Like :func:`ma_crossover_sweep` for :class:`~strategies.equity.RSIReversion` over
    (window, lower, upper) combos; rows ``symbol, window, lower, upper, total_return, trades``."""
    _check_costs(fees, slippage, init_cash)
    bad = [c for c in combos if not (c[0] >= 2 and 0 < c[1] < c[2] < 100)]
    if bad:
        raise ValueError(f"invalid (window, lower, upper) combos: {bad[:5]}")
    close_t, names = _prices(close)
    windows = sorted({int(c[0]) for c in combos})
    index = {w: k for k, w in enumerate(windows)}
    table = _table(close_t, windows, rsi_wilder)
    x_idx = np.array([index[int(c[0])] for c in combos], dtype=np.int64)
    lower = np.array([c[1] for c in combos], dtype=np.float64)
    upper = np.array([c[2] for c in combos], dtype=np.float64)
    ret = np.empty((len(combos), close_t.shape[0]))
    trades = np.empty((len(combos), close_t.shape[0]), dtype=np.int64)
    _run(
        _band_kernel,
        ret.size,
        close_t,
        table,
        x_idx,
        lower,
        upper,
        fees,
        slippage,
        init_cash,
        ret,
        trades,
        threads=threads,
    )
    params = {"window": [int(c[0]) for c in combos], "lower": lower, "upper": upper}
    return _frame(params, names, ret, trades)


def momentum_sweep(
    close: Any,
    combos: Sequence[tuple[int, float, float, int]],
    *,
    fees: float = 0.0,
    slippage: float = 0.0,
    init_cash: float = 100.0,
    threads: int | None = None,
) -> pl.DataFrame:
    """Like :func:`ma_crossover_sweep` for :class:`~strategies.equity.Momentum` over
    (lookback, enter, leave, trend) combos (trend 0: no filter); rows ``symbol, lookback,
    enter, leave, trend, total_return, trades``."""
    _check_costs(fees, slippage, init_cash)
    bad = [c for c in combos if not (c[0] >= 1 and c[2] < c[1] and (c[3] == 0 or c[3] >= 2))]
    if bad:
        raise ValueError(f"invalid (lookback, enter, leave, trend) combos: {bad[:5]}")
    close_t, names = _prices(close)
    lookbacks = sorted({int(c[0]) for c in combos})
    trends = sorted({int(c[3]) for c in combos})
    roc = _table(close_t, lookbacks, rate_of_change)
    # trend 0 is a row of zeros: every close is above it and none below, as the strategy's own
    trend = _table(close_t, trends, lambda x, w: rolling_mean(x, w) if w else np.zeros_like(x))
    roc_idx = np.array([lookbacks.index(int(c[0])) for c in combos], dtype=np.int64)
    trend_idx = np.array([trends.index(int(c[3])) for c in combos], dtype=np.int64)
    enter = np.array([c[1] for c in combos], dtype=np.float64)
    leave = np.array([c[2] for c in combos], dtype=np.float64)
    ret = np.empty((len(combos), close_t.shape[0]))
    trades = np.empty((len(combos), close_t.shape[0]), dtype=np.int64)
    _run(
        _momentum_kernel,
        ret.size,
        close_t,
        roc,
        trend,
        roc_idx,
        trend_idx,
        enter,
        leave,
        fees,
        slippage,
        init_cash,
        ret,
        trades,
        threads=threads,
    )
    params = {
        "lookback": [int(c[0]) for c in combos],
        "enter": enter,
        "leave": leave,
        "trend": [int(c[3]) for c in combos],
    }
    return _frame(params, names, ret, trades)


def per_point(frame: pl.DataFrame, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """A sweep frame's ``total_return`` and ``trades`` as ``(points, symbols)`` arrays (the
    frames hold one row per (point, symbol), point-major, symbols in column order)."""
    ret = frame.get_column("total_return").to_numpy().reshape(n_points, -1)
    trades = frame.get_column("trades").to_numpy().astype(np.int64).reshape(n_points, -1)
    return ret, trades


def simulate_signals(
    close: Any,
    entries: Any,
    exits: Any,
    *,
    fees: float = 0.0,
    slippage: float = 0.0,
    init_cash: float = 100.0,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-column total return and trade count for precomputed signals (any signal strategy,
    e.g. :class:`~strategies.equity.Momentum`), as vectorbt's ``from_signals``."""
    _check_costs(fees, slippage, init_cash)
    close_t, _ = _prices(close)
    ent = np.ascontiguousarray(as_2d(entries).astype(np.bool_).T)
    ext = np.ascontiguousarray(as_2d(exits).astype(np.bool_).T)
    if ent.shape != close_t.shape or ext.shape != close_t.shape:
        raise ValueError(f"entries/exits shape must match close {close_t.T.shape}")
    ret = np.empty(close_t.shape[0])
    trades = np.empty(close_t.shape[0], dtype=np.int64)
    _run(
        _signal_kernel,
        ret.size,
        close_t,
        ent,
        ext,
        fees,
        slippage,
        init_cash,
        ret,
        trades,
        threads=threads,
    )
    return ret, trades


__all__ = [
    "ma_crossover_sweep",
    "ma_pairs",
    "momentum_sweep",
    "per_point",
    "rsi_reversion_sweep",
    "simulate_signals",
]
