"""The live runner loads exactly the model version a manifest names, from a real MLflow store
(SQLite under the data root), verifies its sha256 before unpickling, and refuses a tampered
artifact with nothing bound and the deployment skipped."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alpaca_improved_pipelines.defs.ml.registry import ModelVersion, log_and_register
from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker
from contracts import paths
from live.deployments.manifests import load_manifest
from live.errors import ConfigError
from live.journal import orders as jo
from live.market.snapshot import LakeSnapshotProvider, snapshot_quotes
from live.models import TRACKING_ENV, tracking_uri
from research.ml import TrainingConfig, build_dataset, train
from strategies.ml import GBMSignal, GBMSignalConfig, features, is_bound, unbind_model
from strategies.ml.features import complete_rows
from tests.live.helpers import deploy, sessions, write_lake
from tests.live.runner_setup import MONDAY_10, sim_runner

NAME = "gbm_signal-test"


def _closes(n: int, seed: int) -> np.ndarray:
    return 100 * np.random.default_rng(seed).lognormal(0.0002, 0.015, n).cumprod()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A data root with SPY's daily bars and two registered versions of one model."""
    home = tmp_path_factory.mktemp("models") / "home"
    spy = _closes(120, 5)
    write_lake(home, {"SPY": list(spy)}, sessions(120))
    ds = build_dataset(np.column_stack([_closes(400, 1), _closes(400, 2)]), 5)
    tracker = Tracker(home)
    versions, models = [], []
    for depth, iters in ((2, 10), (3, 30)):
        model = train(ds, TrainingConfig(grid={"max_depth": (depth,), "max_iter": (iters,)})).model
        run = tracker.start_run("gbm_signal", "train", "ml_model", RunTags("r", "a", "x", {}))
        versions.append(log_and_register(tracker, run, model, NAME, ds.x[:3]))
        models.append(model)
    yield {"home": home, "spy": spy, "versions": versions, "models": models, "tracker": tracker}
    for v in versions:
        unbind_model(v.sha256)


def _params(v: ModelVersion, **over: Any) -> dict[str, Any]:
    return {"symbols": ["SPY"], "model_name": v.name, "model_version": v.version,
            "model_sha256": v.sha256, "enter": 0.5, "leave": 0.45, **over}  # fmt: skip


def test_a_manifest_naming_version_n_runs_that_exact_model(store: dict[str, Any]) -> None:
    home, spy = store["home"], store["spy"]
    v1, v2 = store["versions"]
    assert (v1.version, v2.version) == ("1", "2") and v1.sha256 != v2.sha256
    x = features(spy)
    x = x[complete_rows(x)]
    p1, p2 = (m.predict_proba(x)[:, 1] for m in store["models"])
    assert np.abs(p1 - p2).max() > 0.01  # the two versions disagree on this data
    # thresholds put v2's last-bar probability inside the entry band: the runner must buy
    enter = float(p2[-1]) - 1e-6
    path = deploy(home, "gbm-spy", strategy="gbm_signal", params=_params(v2, enter=enter,
                  leave=min(enter - 0.01, 0.4)))  # fmt: skip
    dep = load_manifest(path)
    assert is_bound(v2.sha256)
    strategy = dep.strategy
    assert isinstance(strategy, GBMSignal)
    np.testing.assert_array_equal(strategy.probabilities(spy)[-x.shape[0] :], p2)
    runner = sim_runner(home)
    runner.run(cycles=1)
    snapshot = LakeSnapshotProvider(home).latest(MONDAY_10)
    assert snapshot is not None
    book = runner.ledger.book("gbm-spy", 100_000.0, snapshot_quotes(snapshot))
    expected = strategy.decide(snapshot, type(book).build(100_000.0))
    orders = [o.intent for o in jo.list_orders(runner.j)]
    assert expected and orders == expected  # the same decide(), on that model's probability
    path.unlink()


def test_a_tampered_artifact_is_refused_before_unpickling(store: dict[str, Any]) -> None:
    home, tracker = store["home"], store["tracker"]
    run = tracker.start_run("gbm_signal", "train", "ml_model", RunTags("r", "a", "x", {}))
    v3 = log_and_register(tracker, run, store["models"][0], NAME, np.zeros((2, 8)))
    artifact = Path(tracker.client.get_run(run).info.artifact_uri.removeprefix("file://"))
    pkl = artifact / "model" / "model.pkl"
    evil = b"cos\nsystem\n(S'echo pwned'\ntR."  # a pickle that would run a command
    pkl.write_bytes(evil)
    path = deploy(home, "gbm-evil", strategy="gbm_signal", params=_params(v3))
    with pytest.raises(ConfigError) as err:
        load_manifest(path)
    msg = str(err.value)
    assert "gbm-evil.json" in msg and f"models:/{NAME}/{v3.version}" in msg
    assert v3.sha256 in msg and hashlib.sha256(evil).hexdigest() in msg
    assert not is_bound(v3.sha256)
    runner = sim_runner(home)  # the runner reports and skips it; nothing half-loaded
    runner.run(cycles=1)
    assert "gbm-evil" not in runner.deployments.active
    assert not [o for o in jo.list_orders(runner.j) if o.intent.strategy == "gbm-evil"]
    path.unlink()


def test_a_missing_version_or_hash_is_one_clear_error(store: dict[str, Any]) -> None:
    home = store["home"]
    v1 = store["versions"][0]
    path = deploy(home, "gbm-gone", strategy="gbm_signal",
                  params=_params(ModelVersion(NAME, "99", v1.sha256)))  # fmt: skip
    with pytest.raises(ConfigError, match=f"gbm-gone.json: cannot load model models:/{NAME}/99"):
        load_manifest(path)
    path.unlink()
    path = deploy(home, "gbm-nohash", strategy="gbm_signal", params=_params(v1, model_sha256=""))
    with pytest.raises(ConfigError, match="needs model_name, model_version and model_sha256"):
        load_manifest(path)
    path.unlink()
    assert GBMSignalConfig().model_sha256 == ""


def test_tracking_uri_order(tmp_path: Path) -> None:
    assert tracking_uri(tmp_path, {TRACKING_ENV: "http://m:5000"}) == "http://m:5000"
    assert tracking_uri(tmp_path, {"MLFLOW_TRACKING_URI": "https://s"}) == "https://s"
    assert tracking_uri(tmp_path, {}) == paths.mlflow_uri(tmp_path)
    with pytest.raises(ConfigError, match=TRACKING_ENV):
        tracking_uri(None, {})
