"""``gbm_signal_model`` on a synthetic lake, a real MLflow store and a Dagster instance: trains,
backtests out of sample, logs and registers the model; the candidate row flows through
candidates and approval into a manifest naming the model, which the live loader loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from alpaca_improved_pipelines.backtesting.data import load_for
from alpaca_improved_pipelines.backtesting.research_tables import read_family
from alpaca_improved_pipelines.defs.ml.assets import REGISTERED_HASH
from alpaca_improved_pipelines.defs.ml.training import (
    GBMTrainConfig,
    oos_backtest,
    run_training,
    significance,
    split_row,
)
from alpaca_improved_pipelines.tracking.mlflow_store import Tracker
from contracts import paths
from contracts.manifest import read_manifest
from live.deployments.manifests import load_manifest, write_manifest
from strategies.backtest.signal_fastpath import simulate_signals
from strategies.ml import FEATURE_SET_VERSION, GBMSignal, GBMSignalConfig, unbind_model
from tests.research.ml_run import daily_lake, trained_and_approved
from tests.research_lake import SESSIONS, SYMBOLS, resources_for

pytestmark = pytest.mark.slow  # one Dagster run with MLflow: ~20 s under load

GRID = {"max_depth": [2, 3], "max_iter": [20]}
TRAIN: dict[str, Any] = {"grid_json": json.dumps(GRID), "n_folds": 4, "enter": 0.5, "leave": 0.48}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("ml") / "home"
    daily_lake(home, SYMBOLS, SESSIONS)
    with trained_and_approved(home, resources_for(home), TRAIN) as res:
        yield home, res


def test_the_asset_logs_registers_and_checks_the_model(trained: Any) -> None:
    home, res = trained
    meta = res.asset_materializations_for_node("gbm_signal_model")[0].metadata
    (check,) = res.get_asset_check_evaluations()
    assert check.check_name == REGISTERED_HASH and check.passed
    assert meta["n_trials"].value == 2 and meta["model"].value == "models:/gbm_signal/1"
    tracker = Tracker(home)
    run = tracker.client.get_run(str(meta["mlflow_run_id"].value))
    params, tags = run.data.params, run.data.tags
    assert params["seed"] == "7" and params["feature_set"] == FEATURE_SET_VERSION
    assert params["horizon"] == "5" and params["features"].startswith("ret_1,ret_5")
    assert {"hp.max_depth", "hp.max_iter"} <= set(params)
    assert any(k.startswith("data.version.stock_bars_1d") for k in tags)
    assert {"n_trials", "cv_log_loss", "cv_auc", "dsr", "oos_sharpe_ratio"} <= set(run.data.metrics)
    mv = tracker.client.get_model_version("gbm_signal", "1")
    assert mv.tags["model_sha256"] == meta["model_sha256"].value and mv.run_id == run.info.run_id
    model_dir = Path(run.info.artifact_uri.removeprefix("file://")) / "model"
    assert {"MLmodel", "model.pkl", "input_example.json"} <= {p.name for p in model_dir.iterdir()}
    assert "signature" in (model_dir / "MLmodel").read_text()


def test_the_candidate_row_is_the_out_of_sample_backtest(trained: Any) -> None:
    home, _ = trained
    row = read_family(home / "lake", "backtest_runs", "gbm_signal").row(0, named=True)
    params = json.loads(row["params"])
    assert row["n_trials"] == 2 and 0.0 <= row["dsr"] <= 1.0
    # re-run the out-of-sample backtest from the row's params: same Sharpe, same trades
    data = load_for("1d", home / "lake")
    cut = split_row(len(data.sessions), 0.3, 5)
    strategy = GBMSignal(GBMSignalConfig(symbols=tuple(data.symbols), **params))
    oos = oos_backtest(strategy, data, cut, 0.001, 0.0005)
    assert oos["trades"] == row["trades"]
    np.testing.assert_allclose(oos["metrics"]["sharpe_ratio"], row["sharpe_ratio"], rtol=1e-12)
    # an independent engine (the compiled state machine sweeps check vectorbt against) on the
    # same tail signals: equal capital per symbol, so the book's return is the columns' mean
    entries, exits = strategy.signals(data.close)
    cash = 100_000.0 / len(data.symbols)
    tail = (data.close[cut:], entries[cut:], exits[cut:])
    ret, trades = simulate_signals(*tail, fees=0.001, slippage=0.0005, init_cash=cash)
    assert int(trades.sum()) == row["trades"] > 0
    np.testing.assert_allclose(ret.mean(), row["total_return"], rtol=1e-9, atol=1e-12)
    wf = read_family(home / "lake", "walk_forward", "gbm_signal")
    assert wf.height == 2 and wf["oos_sharpe"].unique().to_list() == [row["sharpe_ratio"]]
    # the tail is out of sample: every training label ended before the tail's first bar
    assert cut == len(data.sessions) - round(len(data.sessions) * 0.3)


def test_the_approved_manifest_names_the_model_and_live_loads_it(trained: Any) -> None:
    home, _ = trained
    (path,) = paths.manifests_dir(home).glob("gbm_signal-*.json")
    manifest = read_manifest(path)
    board = read_family(home / "lake", "backtest_runs", "gbm_signal")
    sha = json.loads(board["params"][0])["model_sha256"]
    assert manifest.params["model_name"] == "gbm_signal"
    assert manifest.params["model_version"] == "1" and manifest.params["model_sha256"] == sha
    unbind_model(sha)  # as in a fresh runner process
    dep = load_manifest(write_manifest(paths.deployments_dir(home), "gbm", manifest))
    close = load_for("1d", home / "lake").close[:, 0]
    probs = dep.strategy.probabilities(close)  # type: ignore[attr-defined]
    assert np.isfinite(probs[-1]) and 0.0 <= probs[-1] <= 1.0
    assert pl.Series(probs).is_nan().sum() == 63  # only the feature warm-up is unscored


def test_the_deflated_sharpe_counts_every_training_search_on_record(trained: Any) -> None:
    """A second search (another grid) deflates by 2 + 3 trials; rerunning that same search on the
    same data counts once; the DSR falls as the ledger grows (same returns, more trials)."""
    home, res = trained
    first = res.asset_materializations_for_node("gbm_signal_model")[0].metadata
    tracker = Tracker(home)
    grid = {"max_depth": [2, 3, 4], "max_iter": [20]}
    settings = GBMTrainConfig(**{**TRAIN, "grid_json": json.dumps(grid)})
    second = run_training(settings, home, tracker, ("test-run", "gbm_signal_model"))
    again = run_training(settings, home, tracker, ("test-run-2", "gbm_signal_model"))
    for out in (second, again):
        assert out["result"].n_trials == 3
        assert out["board"]["n_trials"][0] == 2 + 3
        run = tracker.client.get_run(out["run_id"])
        assert run.data.metrics["trials_ledger"] == 5.0 and run.data.metrics["n_trials"] == 3.0
    assert second["significance"]["dsr"] == again["significance"]["dsr"]
    # the same returns and trial variance deflated by 3 instead of 5 trials: a higher DSR
    fewer = significance(second["oos"]["returns"], second["result"], 3)["dsr"]
    assert second["significance"]["dsr"] < fewer
    assert float(first["n_trials"].value) == 2
    for out in (second, again):
        unbind_model(out["model"].sha256)
