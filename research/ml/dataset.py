"""The ML family's training samples from a close matrix: every (bar, symbol) with complete
features and a known label, pooled across symbols and sorted by time (what purged CV needs).

A sample's feature time is its bar ``t0``; its label ends at ``t1 = t0 + horizon``. ``stop`` cuts
the sample at a bar (the start of a held-out tail): only samples whose label ends before it are
kept, so no training label reaches into the tail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.ml import LOOKBACK, features, labels
from strategies.ml.features import complete_rows


@dataclass(frozen=True)
class Dataset:
    """Pooled samples, sorted by ``(t0, symbol)``."""

    x: np.ndarray  # (samples, features) float64
    y: np.ndarray  # (samples,) int64 in {0, 1}
    t0: np.ndarray  # bar of the features
    t1: np.ndarray  # bar the label ends at
    symbol: np.ndarray  # column of the close matrix
    next_return: np.ndarray  # close[t0 + 1] / close[t0] - 1: what holding over the next bar earns

    def __len__(self) -> int:
        return int(self.y.size)


def build_dataset(close: np.ndarray, horizon: int, stop: int | None = None) -> Dataset:
    """Samples of a ``(bars, symbols)`` close matrix with labels ending before bar ``stop``.

    Raises:
        ValueError: No sample has complete features and a known label (too little history).
    """
    arr = np.asarray(close, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"close must be (bars, symbols), got {arr.ndim} dimensions")
    stop = arr.shape[0] if stop is None else stop
    parts: list[tuple[np.ndarray, ...]] = []
    for j in range(arr.shape[1]):
        c = arr[:stop, j]
        x = features(c)
        y, known = labels(c, horizon)
        nxt = np.full(c.size, np.nan)
        nxt[:-1] = c[1:] / c[:-1] - 1.0
        rows = np.flatnonzero(complete_rows(x) & known)
        parts.append((x[rows], y[rows], rows, np.full(rows.size, j), nxt[rows]))
    xs, ys, t0, sym, nxt_all = (np.concatenate(p) for p in zip(*parts, strict=True))
    if not ys.size:
        raise ValueError(
            f"no training samples in {stop} bars x {arr.shape[1]} symbols: features need "
            f"{LOOKBACK} bars of history and labels {horizon} more; backfill more sessions"
        )
    order = np.lexsort((sym, t0))
    return Dataset(
        xs[order],
        ys[order].astype(np.int64),
        t0[order],
        t0[order] + horizon,
        sym[order],
        nxt_all[order],
    )
