"""Deterministic training of the ML signal family: a small hyperparameter search over
scikit-learn's ``HistGradientBoostingClassifier`` scored by purged walk-forward CV.

Why HistGradientBoosting (not LightGBM or XGBoost): it is the same histogram algorithm, it is
already locked (scikit-learn, through skfolio), it handles the features' NaN natively, and with
``random_state`` fixed and early stopping off it is deterministic for a seed on any thread count
(tested), with one fewer native dependency to pin.

Every hyperparameter point is a trial; the count and each trial's walk-forward Sharpe feed the
Deflated Sharpe of the chosen model, so the search cannot flatter itself.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from research.ml.dataset import Dataset
from strategies import analytics
from strategies.analytics.purged_cv import purged_walk_forward
from strategies.ml import FEATURE_NAMES, FEATURE_SET_VERSION, FEATURE_SETS, proba_predictor

SCORES = ("log_loss", "accuracy", "auc")
DEFAULT_GRID: dict[str, tuple[Any, ...]] = {
    "max_depth": (2, 3),
    "learning_rate": (0.05, 0.1),
    "max_iter": (50, 100),
}


@dataclass(frozen=True)
class TrainingConfig:
    """How the model is searched and validated.

    Attributes:
        seed: ``random_state`` of every model (training is deterministic for it).
        n_folds: Walk-forward folds over the training sample's distinct bars.
        min_train_folds: Folds that only train before the first test fold.
        embargo: Bars embargoed after each test block (AFML; no effect on walk-forward).
        grid: Hyperparameter grid; every point is one trial.
    """

    seed: int = 7
    n_folds: int = 5
    min_train_folds: int = 2
    embargo: int = 0
    grid: Mapping[str, Sequence[Any]] = field(default_factory=lambda: dict(DEFAULT_GRID))

    def points(self) -> list[dict[str, Any]]:
        """The grid's points in declaration order."""
        names = list(self.grid)
        return [dict(zip(names, v, strict=True)) for v in itertools.product(*self.grid.values())]


@dataclass(frozen=True)
class TrainingResult:
    """The fitted model and what the search saw."""

    model: HistGradientBoostingClassifier
    params: dict[str, Any]  # the chosen hyperparameters
    cv: pl.DataFrame  # one row per (trial, fold)
    trials: pl.DataFrame  # one row per trial: mean scores and walk-forward Sharpe
    seed: int
    feature_names: tuple[str, ...] = FEATURE_NAMES
    feature_set: str = FEATURE_SET_VERSION
    seconds: float = 0.0

    @property
    def n_trials(self) -> int:
        return self.trials.height


def make_model(params: Mapping[str, Any], seed: int) -> HistGradientBoostingClassifier:
    """A classifier for ``params``: seeded, early stopping off (no random validation split)."""
    return HistGradientBoostingClassifier(random_state=seed, early_stopping=False, **params)


def fit_model(
    params: Mapping[str, Any], seed: int, x: np.ndarray, y: np.ndarray
) -> HistGradientBoostingClassifier:
    """:func:`make_model` fitted on ``(x, y)``. A column with no known value in ``x`` (``v2``
    vol-surface columns before the lake's first surface) is fitted as the constant 0: a
    constant gives the trees nothing to split on, exactly as an unknown column, and NaN there
    at prediction then takes the same path (scikit-learn 1.9 fails to bin an all-NaN column)."""
    empty = np.isnan(x).all(axis=0) if x.shape[0] else np.zeros(x.shape[1], dtype=np.bool_)
    if empty.any():
        x = x.copy()
        x[:, empty] = 0.0
    return make_model(params, seed).fit(x, y)


def up_probability(model: HistGradientBoostingClassifier, x: np.ndarray) -> np.ndarray:
    """P(label 1) per row: the strategy's predictor (:func:`strategies.ml.proba_predictor`)."""
    return proba_predictor(model)(x)


def _fold_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    auc = roc_auc_score(y, p) if np.unique(y).size == 2 else float("nan")
    return {
        "log_loss": float(log_loss(y, np.clip(p, 1e-9, 1 - 1e-9), labels=[0, 1])),
        "accuracy": float(accuracy_score(y, p > 0.5)),
        "auc": float(auc),
    }


def _daily_returns(ds: Dataset, idx: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Equal-weight daily return of holding each symbol over the next bar while P(up) > 0.5."""
    pnl = np.where(p > 0.5, ds.next_return[idx], 0.0)
    _, inverse = np.unique(ds.t0[idx], return_inverse=True)
    return np.bincount(inverse, weights=pnl) / np.bincount(inverse)


def cross_validate(
    ds: Dataset, params: Mapping[str, Any], config: TrainingConfig
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Per-fold scores of ``params`` and the stitched out-of-fold daily returns."""
    rows, returns = [], []
    splits = purged_walk_forward(
        ds.t0, ds.t1, config.n_folds, config.embargo, config.min_train_folds
    )
    for fold, (train, test) in enumerate(splits):
        model = fit_model(params, config.seed, ds.x[train], ds.y[train])
        p = up_probability(model, ds.x[test])
        rows.append({"fold": fold, "n_train": train.size, "n_test": test.size,
                     **_fold_scores(ds.y[test], p)})  # fmt: skip
        returns.append(_daily_returns(ds, test, p))
    return rows, np.concatenate(returns)


def train(
    ds: Dataset, config: TrainingConfig | None = None, threads: int | None = 1
) -> TrainingResult:
    """Search the grid by purged walk-forward CV (lowest mean log loss wins), then fit the
    chosen point on the whole sample, with OpenMP limited to ``threads`` (None: no limit; the
    result is identical either way, one thread is fastest on samples this small).

    Raises:
        ValueError: The sample has a single class (nothing to learn) or too few bars to fold.
    """
    with threadpool_limits(threads):
        return _train(ds, config or TrainingConfig())


def _train(ds: Dataset, config: TrainingConfig) -> TrainingResult:
    if np.unique(ds.y).size < 2:
        raise ValueError(f"all {len(ds)} training labels are {int(ds.y[0])}; need both classes")
    started = time.perf_counter()
    cv_rows, trial_rows = [], []
    points = config.points()
    for trial, params in enumerate(points):
        rows, returns = cross_validate(ds, params, config)
        cv_rows += [{"trial": trial, **r} for r in rows]
        sharpe = float(analytics.sharpe_ratio(returns, annualization=1))  # per period, for DSR
        trial_rows.append(
            {
                "trial": trial,
                "params": _json(params),
                **{k: float(np.nanmean([r[k] for r in rows])) for k in SCORES},
                "cv_sharpe": sharpe,
                "cv_days": returns.size,
            }
        )
    trials = pl.DataFrame(trial_rows)
    best = int(trials["log_loss"].arg_min() or 0)
    params = points[best]
    model = fit_model(params, config.seed, ds.x, ds.y)
    return TrainingResult(
        model,
        params,
        pl.DataFrame(cv_rows),
        trials.with_columns((pl.col("trial") == best).alias("chosen")),
        config.seed,
        feature_names=FEATURE_SETS[ds.feature_set],
        feature_set=ds.feature_set,
        seconds=time.perf_counter() - started,
    )


def _json(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=True)
