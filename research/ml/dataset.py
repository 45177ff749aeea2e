"""The ML family's training samples from a close matrix: every (bar, symbol) with complete
features and a known label, pooled across symbols and sorted by time (what purged CV needs).

A sample's feature time is its bar ``t0``; its label ends at ``t1 = t0 + horizon``. ``stop`` cuts
the sample at a bar (the start of a held-out tail): only samples whose label ends before it are
kept, so no training label reaches into the tail.

The feature set is the model's (``v1``: closes; ``v2``: closes, volumes and vol surfaces, given
as :class:`~strategies.ml.MLInputs`); a ``v2`` sample needs complete close features only, its
volume and vol-surface columns may be NaN (sessions the lake has no surface for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from strategies.ml import FEATURE_SET_VERSION, LOOKBACK, MLInputs, feature_matrix, labels
from strategies.ml.features import check_feature_set, complete_rows


@dataclass(frozen=True)
class Dataset:
    """Pooled samples, sorted by ``(t0, symbol)``."""

    x: np.ndarray  # (samples, features) float64
    y: np.ndarray  # (samples,) int64 in {0, 1}
    t0: np.ndarray  # bar of the features
    t1: np.ndarray  # bar the label ends at
    symbol: np.ndarray  # column of the close matrix
    next_return: np.ndarray  # close[t0 + 1] / close[t0] - 1: what holding over the next bar earns
    feature_set: str = FEATURE_SET_VERSION

    def __len__(self) -> int:
        return int(self.y.size)


def build_dataset(
    close: Any, horizon: int, stop: int | None = None, feature_set: str = FEATURE_SET_VERSION
) -> Dataset:
    """Samples of a ``(bars, symbols)`` close matrix (or :class:`~strategies.ml.MLInputs`)
    with labels ending before bar ``stop``, on ``feature_set``'s features.

    Raises:
        ValueError: An unknown feature set, ``v2`` without MLInputs, or no sample with complete
            features and a known label (too little history).
    """
    check_feature_set(feature_set)
    inputs = close if isinstance(close, MLInputs) else None
    if inputs is None and feature_set != "v1":
        raise ValueError(
            f"feature_set {feature_set!r} trains on volumes and vol surfaces: pass "
            "strategies.ml.MLInputs(close, volume, vol_matrix(frame, sessions, symbols))"
        )
    arr = np.asarray(close.close if inputs is not None else close, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"close must be (bars, symbols), got {arr.ndim} dimensions")
    stop = arr.shape[0] if stop is None else stop
    parts: list[tuple[np.ndarray, ...]] = []
    for j in range(arr.shape[1]):
        c, volume, vol = inputs.column(j) if inputs is not None else (arr[:, j], None, None)
        c = c[:stop]
        x = feature_matrix(
            feature_set,
            c,
            None if volume is None else volume[:stop],
            None if vol is None else vol[:stop],
        )
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
        feature_set,
    )
