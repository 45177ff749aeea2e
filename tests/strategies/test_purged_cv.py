"""Purged and embargoed CV: AFML Snippet 7.1 by hand and transcribed, skfolio's
CombinatorialPurgedCV as an independent reference, and a hypothesis property (no leak)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skfolio.model_selection import CombinatorialPurgedCV

from strategies.analytics.purged_cv import (
    embargo_bars,
    fold_bounds,
    purged_kfold,
    purged_train_mask,
    purged_walk_forward,
)


def get_train_times(t1: pd.Series, test_times: pd.Series) -> pd.Series:
    """AFML Snippet 7.1 ``getTrainTimes``, transcribed (``iteritems`` is ``items`` today)."""
    trn = t1.copy(deep=True)
    for i, j in test_times.items():
        df0 = trn[(i <= trn.index) & (trn.index <= j)].index  # train starts within test
        df1 = trn[(i <= trn) & (trn <= j)].index  # train ends within test
        df2 = trn[(trn.index <= i) & (j <= trn)].index  # train envelops test
        trn = trn.drop(df0.union(df1).union(df2))
    return trn


def test_hand_worked_example_of_snippet_7_1() -> None:
    # (t0, t1): 1 ends inside the test [4, 6], 3 envelops it, 4..6 start inside it
    t0 = np.arange(10)
    t1 = np.array([1, 5, 3, 9, 4, 6, 6, 8, 9, 9])
    train = purged_train_mask(t0, t1, [4, 5])
    assert np.flatnonzero(train).tolist() == [0, 2, 7, 8, 9]
    ref = get_train_times(pd.Series(t1, index=t0), pd.Series([6], index=[4]))
    assert ref.index.tolist() == [0, 2, 7, 8, 9]
    # embargo of 2 bars after the test's last label end (6): samples 7 and 8 go too
    assert np.flatnonzero(purged_train_mask(t0, t1, [4, 5], embargo=2)).tolist() == [0, 2, 9]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_matches_the_transcribed_snippet(data: st.DataObject) -> None:
    n = data.draw(st.integers(8, 40))
    spans = data.draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    t0 = np.arange(n)
    t1 = t0 + np.array(spans)
    start = data.draw(st.integers(0, n - 2))
    stop = data.draw(st.integers(start + 1, n))
    ours = np.flatnonzero(purged_train_mask(t0, t1, np.arange(start, stop)))
    ref = get_train_times(pd.Series(t1, index=t0), pd.Series([t1[start:stop].max()], [start]))
    assert ours.tolist() == ref.index.tolist()


@pytest.mark.parametrize(("purge", "embargo"), [(0, 0), (3, 0), (3, 2), (1, 4)])
def test_matches_skfolio_combinatorial_purged_cv(purge: int, embargo: int) -> None:
    """skfolio purges ``purged_size`` bars before a test block and ``purged_size + embargo_size``
    after it; a label ``h = purged_size`` bars long gives exactly that."""
    n = 120
    t0 = np.arange(n)
    t1 = t0 + purge
    cv = CombinatorialPurgedCV(n_folds=6, n_test_folds=2, purged_size=purge, embargo_size=embargo)
    splits = list(cv.split(np.zeros((n, 1))))
    assert len(splits) == 15
    for train, tests in splits:
        test = np.concatenate(tests)
        ours = np.flatnonzero(purged_train_mask(t0, t1, test, embargo))
        np.testing.assert_array_equal(ours, train)


def test_kfold_folds_match_skfolio_fold_cut_when_even() -> None:
    # 120 bars in 6 folds: skfolio's arange // 20 and AFML's array_split agree
    assert fold_bounds(np.arange(120), 6) == [(k * 20, k * 20 + 20) for k in range(6)]
    splits = list(purged_kfold(np.arange(120), np.arange(120) + 5, 6, embargo=3))
    assert [s[1][0] for s in splits] == [0, 20, 40, 60, 80, 100]
    train, test = splits[2]
    # purged 35..39 before, 60..67 after (5 purge + 3 embargo)
    assert set(range(35, 40)).isdisjoint(train) and set(range(60, 68)).isdisjoint(train)
    assert {34, 68} <= set(train.tolist())


def test_folds_never_split_one_time_and_walk_forward_trains_before() -> None:
    t0 = np.repeat(np.arange(30), 3)  # three symbols per bar
    t1 = t0 + 2
    bounds = fold_bounds(t0, 4)
    assert all(t0[s] != t0[s - 1] for s, _ in bounds[1:])
    splits = list(purged_walk_forward(t0, t1, 4))
    assert len(splits) == 3
    for train, test in splits:
        assert t1[train].max() < t0[test].min()
        assert t0[train].max() == t0[test].min() - 3  # the 2-bar labels reaching in are purged


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="non-decreasing"):
        purged_train_mask([2, 1], [2, 1], [0])
    with pytest.raises(ValueError, match="n_folds"):
        fold_bounds(np.arange(3), 5)
    assert embargo_bars(250, 0.01) == 2


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_no_train_label_overlaps_a_test_interval_and_the_embargo_holds(
    data: st.DataObject,
) -> None:
    n_bars = data.draw(st.integers(12, 50))
    per_bar = data.draw(st.integers(1, 3))
    t0 = np.repeat(np.arange(n_bars), per_bar)
    t1 = t0 + np.array(data.draw(st.lists(st.integers(0, 5), min_size=t0.size, max_size=t0.size)))
    n_folds = data.draw(st.integers(2, 5))
    embargo = data.draw(st.integers(0, 4))
    walk = data.draw(st.booleans())
    splits = (purged_walk_forward if walk else purged_kfold)(t0, t1, n_folds, embargo)
    for train, test in splits:
        assert not set(train.tolist()) & set(test.tolist())
        lo, hi = t0[test].min(), t1[test].max()
        for i in train:
            assert t1[i] < lo or t0[i] > hi + embargo, (i, lo, hi)
        if walk:
            assert t0[train].max(initial=-1) < lo
        else:  # everything outside test, purge and embargo still trains
            keep = (t1 < lo) | (t0 > hi + embargo)
            keep[test] = False
            assert sorted(train.tolist()) == np.flatnonzero(keep).tolist()


def test_combinations_cover_every_sample_once_as_test() -> None:
    seen = list(itertools.chain.from_iterable(t.tolist() for _, t in purged_kfold(
        np.arange(50), np.arange(50) + 2, 5)))  # fmt: skip
    assert seen == list(range(50))
