"""Walk-forward splits: contiguous, non-overlapping test windows, no look-ahead; OOS evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

import strategies.analytics as sa

SPLITTERS = [sa.rolling_splits, sa.anchored_splits]


def _check_invariants(splits: list[sa.Split], n_obs: int, train: int, test: int, gap: int) -> None:
    assert splits, "at least one fold"
    assert splits[0].test_start == train + gap
    for i, s in enumerate(splits):
        assert s.fold == i
        # No look-ahead: every training index is before the test window (and the gap).
        train_idx = np.arange(n_obs)[s.train]
        test_idx = np.arange(n_obs)[s.test]
        assert train_idx.max() < test_idx.min()
        assert test_idx.min() - train_idx.max() - 1 == gap
        assert 0 < len(test_idx) <= test
    for prev, nxt in zip(splits, splits[1:], strict=False):
        assert nxt.test_start == prev.test_stop  # contiguous, non-overlapping test windows
    assert splits[-1].test_stop <= n_obs


@pytest.mark.parametrize("splitter", SPLITTERS)
@given(
    n_obs=st.integers(10, 400),
    train=st.integers(1, 120),
    test=st.integers(1, 60),
    gap=st.integers(0, 5),
    partial=st.booleans(),
)
def test_split_invariants_hold_for_any_sizes(splitter, n_obs, train, test, gap, partial) -> None:
    if train + gap >= n_obs:
        with pytest.raises(ValueError, match="no test data"):
            splitter(n_obs, train, test, gap=gap, partial_last=partial)
        return
    splits = splitter(n_obs, train, test, gap=gap, partial_last=partial)
    if not partial and n_obs - train - gap < test:
        assert splits == []
        return
    _check_invariants(splits, n_obs, train, test, gap)
    if partial:
        assert splits[-1].test_stop == n_obs  # every observation after warm-up is tested
    else:
        assert all(s.test_stop - s.test_start == test for s in splits)


def test_rolling_windows_slide_and_anchored_windows_expand() -> None:
    rolling = sa.rolling_splits(100, 40, 20)
    anchored = sa.anchored_splits(100, 40, 20)
    assert [(s.train_start, s.train_stop, s.test_start, s.test_stop) for s in rolling] == [
        (0, 40, 40, 60),
        (20, 60, 60, 80),
        (40, 80, 80, 100),
    ]
    assert [(s.train_start, s.train_stop) for s in anchored] == [(0, 40), (0, 60), (0, 80)]


def test_split_rejects_look_ahead_construction() -> None:
    with pytest.raises(ValueError, match="before test"):
        sa.Split(0, 0, 50, 49, 60)


def test_evaluate_fits_only_on_past_data_and_stitches_oos_returns() -> None:
    n = 300
    idx = pd.bdate_range("2022-01-03", periods=n)
    data = pd.DataFrame({"ret": np.random.default_rng(0).normal(0.0005, 0.01, n)}, index=idx)
    last_train_dates: list[pd.Timestamp] = []

    def fit(train: pd.DataFrame) -> float:
        last_train_dates.append(train.index[-1])
        return float(np.sign(train["ret"].mean()))  # "go long if the past drifted up"

    def apply(direction: float, test: pd.DataFrame) -> np.ndarray:
        return direction * test["ret"].to_numpy()

    splits = sa.rolling_splits(n, 100, 50)
    result = sa.walk_forward_evaluate(data, splits, fit, apply)
    test_starts = [idx[s.test_start] for s in splits]
    assert all(last < start for last, start in zip(last_train_dates, test_starts, strict=True))
    assert len(result.folds) == 4
    assert result.oos_returns.size == n - 100
    expected = np.concatenate(
        [f.params * data["ret"].to_numpy()[f.split.test] for f in result.folds]
    )
    np.testing.assert_array_equal(result.oos_returns, expected)
    assert result.metrics["sharpe_ratio"] == pytest.approx(sa.sharpe_ratio(expected), rel=1e-12)
    frame = result.to_frame()
    assert list(frame.index) == [0, 1, 2, 3]
    assert {"sharpe_ratio", "max_drawdown", "test_start"} <= set(frame.columns)


def test_evaluate_accepts_numpy_and_polars_and_custom_metrics() -> None:
    values = np.arange(60, dtype=float) / 1000
    metrics = {"total": sa.cum_returns_final}
    for data in (values, pl.DataFrame({"r": values})):
        result = sa.walk_forward_evaluate(
            data,
            sa.anchored_splits(60, 20, 10),
            fit=lambda train: len(train),
            apply=lambda n_train, test: np.full(len(test), 0.001),
            metrics=metrics,
        )
        assert [f.params for f in result.folds] == [20, 30, 40, 50]
        assert result.metrics["total"] == pytest.approx(1.001**40 - 1)


def test_evaluate_rejects_wrong_length_and_overlapping_folds() -> None:
    data = np.zeros(50)
    with pytest.raises(ValueError, match="expected 10"):
        sa.walk_forward_evaluate(
            data, sa.rolling_splits(50, 20, 10), lambda t: None, lambda p, t: np.zeros(3)
        )
    overlapping = [sa.Split(0, 0, 20, 20, 30), sa.Split(1, 5, 25, 25, 35)]
    with pytest.raises(ValueError, match="overlap"):
        sa.walk_forward_evaluate(data, overlapping, lambda t: None, lambda p, t: np.zeros(len(t)))
