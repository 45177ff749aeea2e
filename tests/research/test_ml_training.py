"""ML family training: the pooled dataset, deterministic for a seed (also across OpenMP thread
counts), every trial counted, and a model that learns a learnable series out of fold."""

from __future__ import annotations

import numpy as np
import pytest

from research.ml import TrainingConfig, build_dataset, train, up_probability
from strategies.ml import LOOKBACK, labels

SMALL = TrainingConfig(grid={"max_depth": (2, 3), "max_iter": (20,)}, n_folds=4)


def _close(n: int, symbols: int, seed: int = 0, phi: float = 0.0) -> np.ndarray:
    """Log-price paths whose daily returns are AR(1) with coefficient ``phi``."""
    eps = np.random.default_rng(seed).normal(0.0, 0.01, (n, symbols))
    r = np.zeros_like(eps)
    for t in range(1, n):
        r[t] = phi * r[t - 1] + eps[t]
    return 100 * np.exp(np.cumsum(r, axis=0))


def test_dataset_is_pooled_sorted_and_stops_before_the_tail() -> None:
    close = _close(200, 3)
    ds = build_dataset(close, 5, stop=150)
    assert np.all(np.diff(ds.t0) >= 0) and np.array_equal(ds.t1, ds.t0 + 5)
    assert ds.t0.min() == LOOKBACK and ds.t1.max() == 149  # no label reaches bar 150
    assert len(ds) == 3 * (149 - 5 - LOOKBACK + 1)
    y, _ = labels(close[:150, 1], 5)
    rows = ds.symbol == 1
    np.testing.assert_array_equal(ds.y[rows], y[ds.t0[rows]].astype(np.int64))
    np.testing.assert_allclose(
        ds.next_return[rows], close[ds.t0[rows] + 1, 1] / close[ds.t0[rows], 1] - 1
    )
    with pytest.raises(ValueError, match="no training samples"):
        build_dataset(close, 5, stop=60)


def test_training_is_deterministic_for_a_seed_and_thread_count() -> None:
    ds = build_dataset(_close(300, 3, seed=1), 5)
    runs = [train(ds, SMALL, threads=1), train(ds, SMALL, threads=1), train(ds, SMALL, threads=2)]
    preds = [up_probability(r.model, ds.x).tobytes() for r in runs]
    assert preds[0] == preds[1] == preds[2]
    assert runs[0].cv.equals(runs[2].cv)
    other = train(ds, TrainingConfig(seed=8, grid=SMALL.grid, n_folds=4))
    assert other.seed == 8 and other.n_trials == 2  # the seed is recorded with the result


def test_every_trial_is_counted_and_the_lowest_log_loss_is_chosen() -> None:
    ds = build_dataset(_close(300, 2, seed=2), 5)
    config = TrainingConfig(
        grid={"max_depth": (2, 3), "learning_rate": (0.05, 0.2), "max_iter": (15,)}, n_folds=4
    )
    result = train(ds, config)
    assert result.n_trials == 4 and result.cv.height == 4 * (4 - 2)  # two walk-forward folds each
    chosen = result.trials.filter("chosen")
    assert chosen.height == 1 and chosen["log_loss"][0] == result.trials["log_loss"].min()
    assert result.trials["cv_sharpe"].is_finite().all() and result.seconds > 0


def test_a_learnable_series_is_learned_out_of_fold() -> None:
    """Trending returns (AR(1), phi 0.5): next-day direction follows ret_1, so the purged
    walk-forward AUC must clear chance; on a random walk it must not."""
    trend = train(build_dataset(_close(700, 3, seed=3, phi=0.5), 1), SMALL)
    walk = train(build_dataset(_close(700, 3, seed=3, phi=0.0), 1), SMALL)
    assert float(trend.trials["auc"].max()) > 0.6  # type: ignore[arg-type]
    assert float(walk.trials["auc"].max()) < 0.56  # type: ignore[arg-type]


def test_one_class_is_a_clear_error() -> None:
    rising = np.cumprod(np.full((120, 1), 1.01), axis=0)
    with pytest.raises(ValueError, match="need both classes"):
        train(build_dataset(rising, 1), SMALL)
