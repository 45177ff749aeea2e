"""Purged and embargoed cross-validation for labels that span time (López de Prado, *Advances in
Financial Machine Learning*, ch. 7).

A sample has a feature time ``t0`` and a label end time ``t1 >= t0`` (the label of a forward
``h``-bar return observed at bar ``t`` ends at ``t + h``). Ordinary K-fold leaks: a training
sample whose label interval overlaps the test interval has seen the test period's prices. So

- **purge** (Snippet 7.1, ``getTrainTimes``): drop every training sample whose closed interval
  ``[t0, t1]`` overlaps a test block's ``[first t0, last t1]`` (it starts within the block, ends
  within it, or envelops it);
- **embargo** (Snippet 7.2): also drop the training samples whose ``t0`` falls within
  ``embargo`` bars after the test block's end (serial correlation carries information forward).

Times are any ordered numeric or ``datetime64`` values with ``t0`` non-decreasing (samples sorted
by feature time; several samples may share a time, e.g. one per symbol). Folds are cut on the
distinct ``t0`` values, so samples of one bar never straddle two folds. The embargo counts bars
on that same grid of distinct ``t0`` values. Pure numpy: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

Split = tuple[np.ndarray, np.ndarray]


def _times(t0: object, t1: object) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(t0), np.asarray(t1)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"t0 and t1 must be 1-D of one length, got {a.shape} and {b.shape}")
    if a.size and (np.any(a[1:] < a[:-1]) or np.any(b < a)):
        raise ValueError("t0 must be non-decreasing (sort samples by time) and t1 >= t0")
    return a, b


def embargo_bars(n_bars: int, fraction: float) -> int:
    """Bars of embargo for a fraction of the sample, as AFML's ``int(T * pctEmbargo)``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"embargo fraction must be in [0, 1), got {fraction}")
    return int(n_bars * fraction)


def _blocks(test: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs ``[start, stop)`` of a boolean mask."""
    edges = np.diff(np.concatenate(([0], test.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def purged_train_mask(t0: object, t1: object, test: object, embargo: int = 0) -> np.ndarray:
    """Training mask given the test samples: everything outside the test set, less the samples
    purged for overlapping a test block's label interval and those embargoed after it.

    Args:
        t0: Feature time of each sample, non-decreasing.
        t1: Label end time of each sample (``>= t0``).
        test: Boolean mask or integer indices of the test samples.
        embargo: Bars (distinct ``t0`` values) after each test block's last label end whose
            samples are also dropped.

    Returns:
        Boolean mask of the samples that may train.
    """
    a, b = _times(t0, t1)
    if embargo < 0:
        raise ValueError(f"embargo must be >= 0 bars, got {embargo}")
    mask = np.zeros(a.size, dtype=bool)
    mask[np.asarray(test)] = True
    grid = np.unique(a)
    train = ~mask
    for start, stop in _blocks(mask):
        lo, hi = a[start], b[start:stop].max()
        end_pos = int(np.searchsorted(grid, hi, side="right")) + embargo - 1
        overlaps = b >= lo
        if embargo == 0 or end_pos < grid.size:
            overlaps &= a <= (hi if embargo == 0 else grid[end_pos])
        train &= ~overlaps
    return train


def fold_bounds(t0: object, n_folds: int) -> list[tuple[int, int]]:
    """``[start, stop)`` sample positions of ``n_folds`` contiguous folds cut on distinct times
    (``np.array_split`` of the time grid, as AFML's ``PurgedKFold``)."""
    a = np.asarray(t0)
    grid = np.unique(a)
    if not 2 <= n_folds <= grid.size:
        raise ValueError(f"n_folds must be in [2, {grid.size}] (distinct times), got {n_folds}")
    cuts = [part[0] for part in np.array_split(np.arange(grid.size), n_folds)] + [grid.size]
    pos = [int(np.searchsorted(a, grid[c])) if c < grid.size else a.size for c in cuts]
    return list(zip(pos[:-1], pos[1:], strict=True))


def purged_kfold(t0: object, t1: object, n_folds: int, embargo: int = 0) -> Iterator[Split]:
    """Purged K-fold (AFML Snippet 7.3): each fold tests once; the rest trains, purged and
    embargoed. Yields ``(train_idx, test_idx)``."""
    a, b = _times(t0, t1)
    for start, stop in fold_bounds(a, n_folds):
        test = np.arange(start, stop)
        yield np.flatnonzero(purged_train_mask(a, b, test, embargo)), test


def purged_walk_forward(
    t0: object, t1: object, n_folds: int, embargo: int = 0, min_train_folds: int = 1
) -> Iterator[Split]:
    """Walk-forward: fold ``k >= min_train_folds`` tests on models trained only on earlier
    samples, purged of those whose label reaches into the test block. (The embargo only drops
    samples after a test block, so it changes nothing here; it is accepted for symmetry.)"""
    a, b = _times(t0, t1)
    bounds = fold_bounds(a, n_folds)
    if not 1 <= min_train_folds < n_folds:
        raise ValueError(f"min_train_folds must be in [1, {n_folds - 1}], got {min_train_folds}")
    for start, stop in bounds[min_train_folds:]:
        test = np.arange(start, stop)
        train = purged_train_mask(a, b, test, embargo)
        train[start:] = False
        yield np.flatnonzero(train), test
