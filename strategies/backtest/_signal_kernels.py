"""Compiled kernels of the signal fast path (see :mod:`strategies.backtest.signal_fastpath`).

Each kernel runs jobs ``lo..hi`` (one job = one parameter combination on one symbol) and releases
the GIL, so the caller can split the jobs across threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_REL_TOL, _ABS_TOL, _MIN_SIZE = 1e-9, 1e-12, 1e-8


@njit(cache=True)
def _is_close(a: float, b: float) -> bool:
    if a == b:
        return True
    return abs(a - b) <= max(_REL_TOL * max(abs(a), abs(b)), _ABS_TOL)


@njit(cache=True)
def _add(a: float, b: float) -> float:
    """vectorbt's ``add_nb``: a sum that is approximately zero becomes exactly zero."""
    if np.sign(a) != np.sign(b):
        if _is_close(abs(a), abs(b)):
            return 0.0
    elif _is_close(a + b, 0.0):
        return 0.0
    return a + b


@njit(cache=True)
def _step(entry, exit_, price, fees, slippage, cash, pos, flow, assets, trades):  # noqa: ANN001
    """One bar of the from_signals state machine; returns the updated state."""
    if entry and exit_:
        return cash, pos, flow, assets, trades
    if entry and pos == 0.0:
        if _is_close(cash, 0.0) or cash <= 0.0:
            return cash, pos, flow, assets, trades
        adj = price * (1.0 + slippage)
        invest = cash / (1.0 + fees)
        size = invest / adj
        paid = cash - invest
        if size < _MIN_SIZE and not _is_close(size, _MIN_SIZE):
            return cash, pos, flow, assets, trades
        flow = _add(flow, -(size * adj + paid))
        assets = _add(assets, size)
        return _add(cash, -cash), _add(pos, size), flow, assets, trades + 1
    if exit_ and pos > 0.0:
        adj = price * (1.0 - slippage)
        acquired = pos * adj
        paid = acquired * fees
        net = _add(acquired, -paid)
        if net < 0.0:
            return cash, pos, flow, assets, trades
        flow = _add(flow, pos * adj - paid)
        assets = _add(assets, -pos)
        return cash + net, _add(pos, -pos), flow, assets, trades
    return cash, pos, flow, assets, trades


@njit(cache=True, nogil=True)
def _cross_kernel(lo, hi, close, table, a_idx, b_idx, fees, slippage, init_cash, ret, trades):  # noqa: ANN001
    n_sym = ret.shape[1]
    n = close.shape[1]
    for job in range(lo, hi):
        c, j = job // n_sym, job % n_sym
        px, a, b = close[j], table[j, a_idx[c]], table[j, b_idx[c]]
        cash, pos, flow, assets, count = init_cash, 0.0, 0.0, 0.0, 0
        for t in range(1, n):
            entry = a[t] > b[t] and a[t - 1] <= b[t - 1]
            exit_ = a[t] < b[t] and a[t - 1] >= b[t - 1]
            if entry or exit_:
                cash, pos, flow, assets, count = _step(
                    entry, exit_, px[t], fees, slippage, cash, pos, flow, assets, count
                )
        ret[c, j] = (flow + assets * px[n - 1]) / init_cash
        trades[c, j] = count


@njit(cache=True, nogil=True)
def _band_kernel(lo, hi, close, table, x_idx, lower, upper, fees, slippage, init_cash, ret, trades):  # noqa: ANN001
    n_sym = ret.shape[1]
    n = close.shape[1]
    for job in range(lo, hi):
        c, j = job // n_sym, job % n_sym
        px, x = close[j], table[j, x_idx[c]]
        below, above = lower[c], upper[c]
        cash, pos, flow, assets, count = init_cash, 0.0, 0.0, 0.0, 0
        for t in range(n):
            entry, exit_ = x[t] < below, x[t] > above
            if entry or exit_:
                cash, pos, flow, assets, count = _step(
                    entry, exit_, px[t], fees, slippage, cash, pos, flow, assets, count
                )
        ret[c, j] = (flow + assets * px[n - 1]) / init_cash
        trades[c, j] = count


@njit(cache=True, nogil=True)
def _momentum_kernel(
    lo,
    hi,
    close,
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
):  # noqa: ANN001
    n_sym = ret.shape[1]
    n = close.shape[1]
    for job in range(lo, hi):
        c, j = job // n_sym, job % n_sym
        px, r, tr = close[j], roc[j, roc_idx[c]], trend[j, trend_idx[c]]
        up, down = enter[c], leave[c]
        cash, pos, flow, assets, count = init_cash, 0.0, 0.0, 0.0, 0
        for t in range(n):
            entry = r[t] > up and px[t] > tr[t]
            exit_ = r[t] < down or px[t] < tr[t]
            if entry or exit_:
                cash, pos, flow, assets, count = _step(
                    entry, exit_, px[t], fees, slippage, cash, pos, flow, assets, count
                )
        ret[c, j] = (flow + assets * px[n - 1]) / init_cash
        trades[c, j] = count


@njit(cache=True, nogil=True)
def _signal_kernel(lo, hi, close, entries, exits, fees, slippage, init_cash, ret, trades):  # noqa: ANN001
    n = close.shape[1]
    for j in range(lo, hi):
        px = close[j]
        cash, pos, flow, assets, count = init_cash, 0.0, 0.0, 0.0, 0
        for t in range(n):
            if entries[j, t] or exits[j, t]:
                cash, pos, flow, assets, count = _step(
                    entries[j, t],
                    exits[j, t],
                    px[t],
                    fees,
                    slippage,
                    cash,
                    pos,
                    flow,
                    assets,
                    count,
                )
        ret[j] = (flow + assets * px[n - 1]) / init_cash
        trades[j] = count
