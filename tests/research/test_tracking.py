"""MLflow tracking on a real temp SQLite store: tags, ledger, abandoned runs, secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker
from research import experiments

TAGS = RunTags(
    dagster_run_id="run-123",
    asset_key="ma_crossover_sweep",
    partition_range="2024-01-02..2024-06-28",
    data_versions={"stock_bars_1d": "ab" * 32},
)


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    return Tracker(tmp_path)


def test_runs_carry_every_reproducibility_tag(tracker: Tracker) -> None:
    run_id = tracker.start_run("ma_crossover", "sweep-1", "sweep", TAGS)
    tracker.log(run_id, params={"fast": 10}, metrics={"sharpe_ratio": 1.2, "n_trials": 30})
    tracker.finish(run_id)
    tags = tracker.client.get_run(run_id).data.tags
    for key in (
        "dagster.run_id",
        "dagster.asset_key",
        "dagster.partition_range",
        "git.sha",
        "data.version",
        "data.version.stock_bars_1d",
        "argv",
    ):
        assert tags[key], key
    assert tags["dagster.run_id"] == "run-123"
    assert len(tags["git.sha"]) == 40
    if tags.get("git.dirty") == "true":  # a dirty tree ships its diff
        names = [a.path for a in tracker.client.list_artifacts(run_id, "code")]
        assert "code/uncommitted.diff" in names


def test_trial_ledger_counts_every_sweep(tracker: Tracker) -> None:
    for n in (30, 12):
        run_id = tracker.start_run("rsi_reversion", f"sweep-{n}", "sweep", TAGS)
        tracker.log(run_id, metrics={"n_trials": n})
        tracker.finish(run_id)
    child = tracker.start_run("rsi_reversion", "variant", "variant", TAGS)
    tracker.log(child, metrics={"n_trials": 999})  # variants do not count as trials
    assert tracker.trials_so_far("rsi_reversion") == 42
    assert tracker.trials_so_far("ma_crossover") == 0


def test_run_of_a_killed_process_is_marked_failed(tracker: Tracker, tmp_path: Path) -> None:
    code = (
        "import sys, os\nfrom pathlib import Path\n"
        "from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker\n"
        "t = Tracker(Path(sys.argv[1]))\n"
        "t.start_run('ma_crossover', 'doomed', 'sweep', RunTags('r', 'a', 'p'))\n"
        "os._exit(0)\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=root, timeout=120)
    live = tracker.start_run("ma_crossover", "alive", "sweep", TAGS)  # this process: alive
    assert tracker.mark_abandoned_runs_failed("ma_crossover") == 1
    runs = {
        r.info.run_name: r.info.status
        for r in tracker.client.search_runs([tracker.experiment_id("ma_crossover")])
    }
    assert runs == {"doomed": "FAILED", "alive": "RUNNING"}
    tracker.finish(live)


def test_secret_values_are_refused(tracker: Tracker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_SECRET_KEY", "s3cr3t-value-123")
    run_id = tracker.start_run("ma_crossover", "x", "sweep", TAGS)
    with pytest.raises(ValueError, match="ALPACA_SECRET_KEY"):
        tracker.log(run_id, params={"note": "key=s3cr3t-value-123"})
    params = tracker.client.get_run(run_id).data.params
    assert "note" not in params


def test_compare_ranks_runs_and_names_unknown_experiments(tracker: Tracker, tmp_path: Path) -> None:
    for i, sharpe in enumerate((0.5, 2.0, 1.0)):
        run_id = tracker.start_run("ma_crossover", f"v{i}", "variant", TAGS)
        tracker.log(run_id, params={"fast": i}, metrics={"sharpe_ratio": sharpe})
        tracker.finish(run_id)
    df = experiments.compare("ma_crossover", metric="sharpe_ratio", top=2, home=tmp_path)
    assert df["sharpe_ratio"].tolist() == [2.0, 1.0]
    assert df["param.fast"].tolist() == ["1", "2"]
    with pytest.raises(ValueError, match="known: ma_crossover"):
        experiments.compare("nope", home=tmp_path)
    assert os.path.exists(tmp_path / "mlflow.db")
