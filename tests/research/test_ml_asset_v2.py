"""``gbm_signal_model`` with feature set v2 on a synthetic lake the real options pipeline wrote
(chains and vol surfaces for SPY on every other session of the last 100, from the late
training head through the held-out tail; AAPL never has a surface): one
Dagster run trains, logs the v2 features and registers the model; the approved manifest carries
feature_set v2; the live runner's loader binds it and decide() on the lake snapshot (its
vol_features from the live provider) equals the vectorized v2 signal of the last session."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.backtesting.data import load_for
from alpaca_improved_pipelines.defs.ml.assets import REGISTERED_HASH
from alpaca_improved_pipelines.defs.ml.inputs import ml_inputs
from alpaca_improved_pipelines.defs.options import work
from alpaca_improved_pipelines.defs.options.config import ChainConfig, SurfaceConfig
from alpaca_improved_pipelines.defs.resources import build_resources
from alpaca_improved_pipelines.settings import Settings
from alpaca_improved_pipelines.tracking.mlflow_store import Tracker
from contracts import paths
from contracts.manifest import read_manifest
from live.deployments.manifests import load_manifest, write_manifest
from live.market.snapshot import LakeSnapshotProvider, session_close
from strategies.ml import FEATURE_NAMES_V2, GBMSignal, MLInputs, snapshot_columns, unbind_model
from strategies.models import Book
from tests.research.ml_run import daily_lake, trained_and_approved

pytestmark = pytest.mark.slow  # the options pipeline for 50 sessions and one Dagster run: ~60 s

SYMBOLS = ("SPY", "AAPL")
SESSIONS = cal.sessions_between(dt.date(2024, 1, 2), dt.date(2024, 10, 31))  # 211 sessions
SURFACED = SESSIONS[-1:-101:-2][::-1]  # every other session of the last 100, the last included
GRID = {"max_depth": [2, 3], "max_iter": [20], "min_samples_leaf": [5]}  # 16 surfaced head rows
TRAIN: dict[str, Any] = {"grid_json": json.dumps(GRID), "n_folds": 4, "enter": 0.5, "leave": 0.48,
         "feature_set": "v2"}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("ml_v2") / "home"
    daily_lake(home, SYMBOLS, SESSIONS)
    res = build_resources(Settings(home=home, symbols=SYMBOLS, fsync=False))  # type: ignore[arg-type]
    chains = ChainConfig(underlyings=["SPY"], american_iv=False)
    work.chains_for_run(chains, res["source"], res["lake"], res["universe"], SURFACED)  # type: ignore[arg-type]
    work.surfaces_for_run(SurfaceConfig(min_history=5), res["lake"], SURFACED)  # type: ignore[arg-type]
    with trained_and_approved(home, res, TRAIN) as out:
        yield home, out


def test_the_run_logs_and_registers_the_v2_features(trained: Any) -> None:
    home, out = trained
    meta = out.asset_materializations_for_node("gbm_signal_model")[0].metadata
    (check,) = out.get_asset_check_evaluations()
    assert check.check_name == REGISTERED_HASH and check.passed
    assert meta["feature_set"].value == "v2" and meta["n_features"].value == 20
    assert meta["surface_coverage"].value == {"AAPL": 0.0, "SPY": round(50 / len(SESSIONS), 4)}
    run = Tracker(home).client.get_run(str(meta["mlflow_run_id"].value))
    assert run.data.params["feature_set"] == "v2"
    assert run.data.params["features"] == ",".join(FEATURE_NAMES_V2)
    tables = {k.removeprefix("data.version.") for k in run.data.tags if k.startswith("data.")}
    assert {"stock_bars_1d", "vol_surface", "option_chains"} <= tables
    model_dir = Path(run.info.artifact_uri.removeprefix("file://")) / "model"
    mlmodel = (model_dir / "MLmodel").read_text()
    assert "feature_set: v2" in mlmodel and "iv_rv_premium" in mlmodel
    example = json.loads((model_dir / "input_example.json").read_text())
    rows = np.asarray(example["data"] if isinstance(example, dict) else example, dtype=float)
    assert rows.shape[1] == len(FEATURE_NAMES_V2) and np.isfinite(rows).all()


def test_live_decides_with_the_lakes_vol_features_as_the_backtest(trained: Any) -> None:
    home, _ = trained
    (path,) = paths.manifests_dir(home).glob("gbm_signal-*.json")
    manifest = read_manifest(path)
    assert manifest.params["feature_set"] == "v2"
    unbind_model(manifest.params["model_sha256"])  # as in a fresh runner process
    dep = load_manifest(write_manifest(paths.deployments_dir(home), "gbm-v2", manifest))
    strategy = dep.strategy
    assert isinstance(strategy, GBMSignal) and strategy.config.feature_set == "v2"
    lake = home / "lake"
    data = load_for("1d", lake)
    inputs, _ = ml_inputs(lake, data, "v2")
    assert isinstance(inputs, MLInputs) and inputs.vol is not None
    spy, aapl = data.symbols.index("SPY"), data.symbols.index("AAPL")
    surfaced = np.array([s in SURFACED for s in data.sessions])
    assert np.isfinite(inputs.vol[surfaced, spy, 2]).all() and np.isnan(inputs.vol[~surfaced]).all()
    assert np.isnan(inputs.vol[:, aapl]).all()
    entries, exits = strategy.signals(inputs)
    snap = LakeSnapshotProvider(home).latest(session_close(SESSIONS[-1]))
    assert snap is not None and snap.session == SESSIONS[-1]
    assert set(snap.vol_features) == {"SPY"}  # the live provider fills them for this family
    for j, symbol in enumerate(data.symbols):
        close = snap.close_array(symbol)
        live = strategy.probabilities(close, *snapshot_columns(snap, symbol, close.size))
        vectorized = strategy.probabilities(*inputs.column(j))
        assert live[-1] == vectorized[-1], symbol  # the same float, bit for bit
    # the registered model reads the surface: without it SPY's surfaced rows score otherwise
    close, volume, vol = inputs.column(spy)
    blind = strategy.probabilities(close, volume, None)
    with_surface = strategy.probabilities(close, volume, vol)
    assert (blind[surfaced] != with_surface[surfaced]).any()
    np.testing.assert_array_equal(blind[~surfaced], with_surface[~surfaced])
    buys = {i.legs[0].symbol for i in strategy.decide(snap, Book.build(100_000.0))}
    expected = {s for j, s in enumerate(data.symbols) if entries[-1, j] and not exits[-1, j]}
    assert buys == expected
