"""Walk-forward (rolling and anchored) train/test splits and out-of-sample evaluation.

Test windows tile the sample after the first training window: they are contiguous, never
overlap, and every training window ends before its test window starts (minus an optional
``gap`` to embargo labels that look ahead), so look-ahead through the split is impossible.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from strategies.analytics._utils import DAILY
from strategies.analytics.drawdown import max_drawdown
from strategies.analytics.returns import annual_return, sharpe_ratio, sortino_ratio

__all__ = [
    "FoldResult",
    "Split",
    "WalkForwardResult",
    "anchored_splits",
    "default_metrics",
    "rolling_splits",
    "walk_forward_evaluate",
]

MetricFn = Callable[[np.ndarray], float]


@dataclass(frozen=True, slots=True)
class Split:
    """One walk-forward fold: half-open position ranges ``[start, stop)``.

    Attributes:
        fold: Fold number, from 0.
        train_start: First training position.
        train_stop: One past the last training position.
        test_start: First test position (``>= train_stop``).
        test_stop: One past the last test position.
    """

    fold: int
    train_start: int
    train_stop: int
    test_start: int
    test_stop: int

    def __post_init__(self) -> None:
        if not 0 <= self.train_start < self.train_stop <= self.test_start < self.test_stop:
            raise ValueError(f"invalid split (train must end before test starts): {self}")

    @property
    def train(self) -> slice:
        """Positional slice of the training window."""
        return slice(self.train_start, self.train_stop)

    @property
    def test(self) -> slice:
        """Positional slice of the test window."""
        return slice(self.test_start, self.test_stop)


def _splits(
    n_obs: int, train_size: int, test_size: int, gap: int, partial_last: bool, anchored: bool
) -> list[Split]:
    for name, value in (("train_size", train_size), ("test_size", test_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    if train_size + gap >= n_obs:
        raise ValueError(
            f"n_obs={n_obs} leaves no test data after train_size={train_size} and gap={gap}"
        )
    splits: list[Split] = []
    test_start = train_size + gap
    while test_start < n_obs:
        test_stop = min(test_start + test_size, n_obs)
        if test_stop - test_start < test_size and not partial_last:
            break
        train_stop = test_start - gap
        train_start = 0 if anchored else train_stop - train_size
        splits.append(Split(len(splits), train_start, train_stop, test_start, test_stop))
        test_start = test_stop
    return splits


def rolling_splits(
    n_obs: int, train_size: int, test_size: int, *, gap: int = 0, partial_last: bool = True
) -> list[Split]:
    """Rolling walk-forward: a fixed-length training window slides with the test window.

    Args:
        n_obs: Number of observations.
        train_size: Length of every training window.
        test_size: Length of every test window (the last one may be shorter).
        gap: Observations skipped between the end of training and the start of testing.
        partial_last: Keep a final test window shorter than ``test_size``.

    Returns:
        The folds, in time order.

    Raises:
        ValueError: On non-positive sizes or too few observations.
    """
    return _splits(n_obs, train_size, test_size, gap, partial_last, anchored=False)


def anchored_splits(
    n_obs: int, train_size: int, test_size: int, *, gap: int = 0, partial_last: bool = True
) -> list[Split]:
    """Anchored (expanding) walk-forward: training always starts at the first observation.

    Args:
        n_obs: Number of observations.
        train_size: Length of the first training window.
        test_size: Length of every test window (the last one may be shorter).
        gap: Observations skipped between the end of training and the start of testing.
        partial_last: Keep a final test window shorter than ``test_size``.

    Returns:
        The folds, in time order.

    Raises:
        ValueError: On non-positive sizes or too few observations.
    """
    return _splits(n_obs, train_size, test_size, gap, partial_last, anchored=True)


def default_metrics(period: str = DAILY, annualization: float | None = None) -> dict[str, MetricFn]:
    """Headline out-of-sample metrics: Sharpe, Sortino, CAGR and maximum drawdown."""
    return {
        "sharpe_ratio": lambda r: sharpe_ratio(r, period=period, annualization=annualization),
        "sortino_ratio": lambda r: sortino_ratio(r, period=period, annualization=annualization),
        "annual_return": lambda r: annual_return(r, period=period, annualization=annualization),
        "max_drawdown": max_drawdown,
    }


@dataclass(frozen=True, slots=True)
class FoldResult:
    """Out-of-sample outcome of one fold: the fitted parameters and the test-window returns."""

    split: Split
    params: Any
    returns: np.ndarray
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class WalkForwardResult:
    """Per-fold results plus metrics of the stitched out-of-sample return series."""

    folds: list[FoldResult]
    oos_returns: np.ndarray
    metrics: dict[str, float]

    def to_frame(self) -> pd.DataFrame:
        """One row per fold: positions of the windows and the fold's metrics."""
        rows = [
            {
                "fold": f.split.fold,
                "train_start": f.split.train_start,
                "train_stop": f.split.train_stop,
                "test_start": f.split.test_start,
                "test_stop": f.split.test_stop,
                **f.metrics,
            }
            for f in self.folds
        ]
        return pd.DataFrame(rows).set_index("fold")


def _take(data: Any, window: slice) -> Any:
    return data.iloc[window] if hasattr(data, "iloc") else data[window]


def walk_forward_evaluate(
    data: Any,
    splits: list[Split],
    fit: Callable[[Any], Any],
    apply: Callable[[Any, Any], Any],
    metrics: Mapping[str, MetricFn] | None = None,
) -> WalkForwardResult:
    """Fit on each training window, run on the following test window, score out of sample.

    ``fit`` only ever sees the training rows; ``apply`` gets the fitted parameters and the
    test rows and returns one strategy return per test row. Rows are taken by position
    (``.iloc`` for pandas, slicing for numpy and polars).

    Args:
        data: Time-ordered inputs (array, pandas or polars object).
        splits: Folds from :func:`rolling_splits` or :func:`anchored_splits`.
        fit: ``fit(train_data) -> params``.
        apply: ``apply(params, test_data) -> returns`` (array-like, one per test row).
        metrics: Name -> ``fn(returns) -> float``; default :func:`default_metrics`.

    Returns:
        Per-fold parameters, returns and metrics, and the metrics of all test returns stitched
        in time order.

    Raises:
        ValueError: If ``apply`` returns the wrong number of returns for a fold.
    """
    metric_fns = dict(default_metrics() if metrics is None else metrics)
    folds: list[FoldResult] = []
    for split in splits:
        if folds and split.test_start < folds[-1].split.test_stop:
            raise ValueError(f"fold {split.fold}: test windows must be in time order, not overlap")
        params = fit(_take(data, split.train))
        oos = np.asarray(apply(params, _take(data, split.test)), dtype=np.float64).ravel()
        expected = split.test_stop - split.test_start
        if oos.size != expected:
            raise ValueError(
                f"fold {split.fold}: apply returned {oos.size} returns, expected {expected}"
            )
        folds.append(FoldResult(split, params, oos, {k: fn(oos) for k, fn in metric_fns.items()}))
    stitched = np.concatenate([f.returns for f in folds]) if folds else np.array([])
    return WalkForwardResult(folds, stitched, {k: fn(stitched) for k, fn in metric_fns.items()})
