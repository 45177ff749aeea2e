"""Training on feature set v2: the same samples as v1 with the v1 columns bit for bit, the model
learns from the vol surface when the surface carries information (out-of-fold AUC well above
v1's), missing surfaces (NaN) train, and training stays deterministic for a seed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from research.ml import TrainingConfig, build_dataset, train, up_probability
from research.ml.train import fit_model
from strategies.ml import FEATURE_NAMES, FEATURE_NAMES_V2, VOL_FEATURES, MLInputs, labels

SMALL = TrainingConfig(grid={"max_depth": (2, 3), "max_iter": (30,)}, n_folds=4)
N, SYMBOLS, H, CUT = 500, 3, 5, 420


def _inputs(seed: int = 0, first: int = 150) -> MLInputs:
    """Random-walk closes (nothing for v1 to learn) and a surface whose 25-delta risk reversal
    leans toward the sign of the next 5 sessions' return (as a skew that prices the move would);
    no surface before session ``first`` nor on every 7th session."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (N, SYMBOLS)), axis=0))
    volume = rng.lognormal(13.0, 0.3, (N, SYMBOLS))
    vol = rng.normal(0.2, 0.05, (N, SYMBOLS, len(VOL_FEATURES)))
    for j in range(SYMBOLS):
        y, known = labels(close[:, j], H)
        lean = np.where(known, 2.0 * np.nan_to_num(y) - 1.0, 0.0)
        vol[:, j, VOL_FEATURES.index("rr25")] = 0.01 * lean + rng.normal(0.0, 0.01, N)
    vol[:first] = np.nan
    vol[::7] = np.nan
    return MLInputs(close, volume, vol)


def test_v2_samples_are_v1_samples_plus_columns() -> None:
    inputs = _inputs()
    v1 = build_dataset(inputs.close, H, stop=CUT)
    v2 = build_dataset(inputs, H, stop=CUT, feature_set="v2")
    assert v2.x.shape == (len(v1), len(FEATURE_NAMES_V2)) and v2.feature_set == "v2"
    np.testing.assert_array_equal(v2.x[:, : len(FEATURE_NAMES)], v1.x)
    for a, b in ((v1.y, v2.y), (v1.t0, v2.t0), (v1.t1, v2.t1), (v1.symbol, v2.symbol)):
        np.testing.assert_array_equal(a, b)
    assert np.isnan(v2.x[v2.t0 < 150, len(FEATURE_NAMES) + 1 :]).all()
    assert v2.t1.max() < CUT  # no training label reaches the tail
    with pytest.raises(ValueError, match="'v2' trains on volumes and vol surfaces"):
        build_dataset(inputs.close, H, feature_set="v2")
    with pytest.raises(ValueError, match="feature_set 'v3'"):
        build_dataset(inputs.close, H, feature_set="v3")


def test_v2_learns_from_the_vol_surface_and_v1_cannot() -> None:
    inputs = _inputs()
    started = time.perf_counter()
    r1 = train(build_dataset(inputs.close, H, stop=CUT), SMALL)
    r2 = train(build_dataset(inputs, H, stop=CUT, feature_set="v2"), SMALL)
    seconds = time.perf_counter() - started
    auc1 = float(r1.trials.filter("chosen")["auc"][0])
    auc2 = float(r2.trials.filter("chosen")["auc"][0])
    print(f"cv auc v1 {auc1:.3f} v2 {auc2:.3f}; both trainings {seconds:.1f} s")
    assert auc1 < 0.58 and auc2 > auc1 + 0.1
    assert r2.feature_names == FEATURE_NAMES_V2 and r2.feature_set == "v2"
    assert r1.feature_names == FEATURE_NAMES and r1.feature_set == "v1"


def test_v2_training_is_deterministic_for_a_seed() -> None:
    ds = build_dataset(_inputs(1), H, stop=CUT, feature_set="v2")
    a, b = train(ds, SMALL), train(ds, SMALL, threads=2)
    np.testing.assert_array_equal(up_probability(a.model, ds.x), up_probability(b.model, ds.x))
    assert a.trials.drop("params").equals(b.trials.drop("params"))


def test_a_surface_unknown_in_every_training_row_trains_and_is_ignored() -> None:
    """The lake's surfaces start after the first folds' training rows end: those folds fit
    (scikit-learn cannot bin an all-NaN column alone), and the column plays no part."""
    ds = build_dataset(_inputs(first=380), H, stop=CUT, feature_set="v2")
    result = train(ds, SMALL)
    assert result.cv.height == 2 * (SMALL.n_folds - SMALL.min_train_folds)
    early = ds.t0 < 380
    model = fit_model({"max_depth": 3, "max_iter": 30}, 7, ds.x[early], ds.y[early])
    x = ds.x[~early].copy()
    before = up_probability(model, x)
    x[:, len(FEATURE_NAMES) + 1 :] = 123.0  # any surface value: the model never split on it
    np.testing.assert_array_equal(up_probability(model, x), before)
