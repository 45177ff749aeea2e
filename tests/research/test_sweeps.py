"""Sweeps as Dagster assets on a real temp lake, a real Dagster instance and a real MLflow store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from alpaca_improved_pipelines.backtesting.data import load_closes
from alpaca_improved_pipelines.backtesting.sweep import SweepSpec, evaluate_chunk
from alpaca_improved_pipelines.defs.research.assets import SWEEPS
from alpaca_improved_pipelines.defs.research.walk_forward import walk_forward as wf_fn
from alpaca_improved_pipelines.tracking.mlflow_store import Tracker
from research import lakehouse
from strategies import analytics

from .conftest import fill_lake, one_worker, quiet, resources_for

ROOT = Path(__file__).resolve().parents[2]


def _runs(home: Path, family: str) -> list:
    t = Tracker(home)
    return t.client.search_runs([t.experiment_id(family)], max_results=1000)


def test_sweep_parent_and_children_carry_tags_and_artifacts(swept) -> None:
    home, res = swept
    runs = _runs(home, "ma_crossover")
    parents = [
        r
        for r in runs
        if r.data.tags["alpaca_improved.kind"] == "sweep"
        and r.data.tags["dagster.run_id"] == res.run_id
    ]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 3
    p = parents[0]
    assert p.info.status == "FINISHED"
    assert p.data.tags["dagster.run_id"] == res.run_id
    assert p.data.tags["dagster.asset_key"] == "ma_crossover_sweep"
    assert p.data.tags["dagster.partition_range"] == "2024-01-02..2024-12-31"
    assert len(p.data.tags["git.sha"]) == 40 and len(p.data.tags["data.version"]) == 64
    assert p.data.metrics["n_trials"] > 50 and p.data.metrics["fastpath_max_abs_diff"] < 1e-9
    client = Tracker(home).client
    names = {a.path for a in client.list_artifacts(p.info.run_id)}
    assert "results.parquet" in names
    plots = {a.path for a in client.list_artifacts(p.info.run_id, "plots")}
    assert {"plots/heatmap.png", "plots/heatmap.html"} <= plots
    for c in children:
        assert c.data.tags["mlflow.parentRunId"] == p.info.run_id
        files = {a.path for a in client.list_artifacts(c.info.run_id)}
        assert {"trades.parquet", "daily_returns.parquet"} <= files
        assert "sharpe_ratio" in c.data.metrics and "dsr" in c.data.metrics


def test_results_match_analytics_and_fast_path(swept) -> None:
    home, _ = swept
    results = pl.read_parquet(
        home / "lake" / "sweep_results" / "family=ma_crossover" / "part.parquet"
    )
    ok = results.filter(pl.col("error").is_null())
    assert ok["fastpath_trades_equal"].all()
    row = ok.row(0, named=True)
    assert row["sharpe_ratio"] == pytest.approx(analytics.sharpe_ratio(np.asarray(row["returns"])))
    assert results["params"].n_unique() == results.height  # every point exactly once


def test_views_and_leaderboard(swept) -> None:
    home, res = swept
    con = lakehouse.connect(home)
    fams = con.sql("SELECT DISTINCT family FROM backtest_runs ORDER BY 1").fetchall()
    families = ["ma_crossover", "momentum", "rsi_reversion", "vwap_reversion"]  # the registry's
    assert fams == [(f,) for f in families]
    wf = con.sql("SELECT family, count(*) FROM walk_forward GROUP BY 1 ORDER BY 1").fetchall()
    assert [f for f, _ in wf] == families
    assert all(n >= 3 for _, n in wf)
    md = res.asset_materializations_for_node("leaderboard")[0].metadata["leaderboard"].value
    assert all(f in md for f in (*families, "oos_sharpe"))


def test_sweep_is_deterministic(swept, tmp_path: Path) -> None:
    year_home, _ = swept
    other = tmp_path / "again"
    fill_lake(other)
    with dg.instance_for_test() as instance:
        assert dg.materialize(
            [SWEEPS["rsi_reversion"]],
            resources=resources_for(other),
            instance=instance,
            run_config=quiet(one_worker("rsi_reversion")),
        ).success

    def table(h: Path) -> pl.DataFrame:
        return pl.read_parquet(
            h / "lake" / "backtest_runs" / "family=rsi_reversion" / "part.parquet"
        ).drop("mlflow_run_id", "sweep_run_id")

    again, first = table(other), table(year_home)
    assert again.columns == first.columns
    differ = [c for c in first.columns if not again[c].equals(first[c])]
    assert not differ, f"columns differ between two sweeps of the same lake: {differ}"


def test_walk_forward_chooses_from_training_data_only() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0005, 0.01, size=(4, 200))
    frame = pl.DataFrame(
        {
            "params": [json.dumps({"v": i}) for i in range(4)],
            "returns": [r.tolist() for r in returns],
            "error": [None] * 4,
        }
    )
    out = wf_fn(frame, train=60, test=20, anchored=False)
    for fold in out["folds"].iter_rows(named=True):
        train = returns[:, fold["train_start"] : fold["train_stop"]]
        best = int(np.argmax([analytics.sharpe_ratio(r) for r in train]))
        assert json.loads(fold["params"]) == {"v": best}
        assert fold["train_stop"] <= fold["test_start"]
    assert len(out["oos_returns"]) == 140


def test_failing_variant_is_a_recorded_failed_trial(year_home: Path) -> None:
    data = load_closes(year_home / "lake")
    spec = SweepSpec("ma_crossover", [])
    frame = evaluate_chunk(
        spec, [{"fast": 10, "slow": 20}, {"fast": 10, "slow": 400}, {"fast": 30, "slow": 20}], data
    )
    assert frame.height == 3
    errors = frame["error"].to_list()
    assert errors[0] is None
    assert "lookback 400" in errors[1]
    assert "fast must be < slow" in errors[2]


@pytest.mark.slow
def test_sweep_resumes_after_sigkill_and_logs_each_point_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fill_lake(home)
    code = (
        "import sys, dagster as dg\nfrom pathlib import Path\n"
        "from alpaca_improved_pipelines.defs.research.assets import SWEEPS\n"
        "from tests.research.conftest import resources_for, quiet, one_worker\n"
        "with dg.instance_for_test() as inst:\n"
        "    dg.materialize([SWEEPS['ma_crossover']], resources=resources_for(Path(sys.argv[1])),"
        " instance=inst, run_config=quiet(one_worker('ma_crossover')))\n"
    )
    env = {**os.environ, "ALPACA_IMPROVED_SWEEP_CRASH_AFTER": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(home)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    chunks = list((home / "sweeps" / "ma_crossover").rglob("chunk-*.parquet"))
    assert len(chunks) == 2
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [SWEEPS["ma_crossover"]],
            resources=resources_for(home),
            instance=instance,
            run_config=quiet(one_worker("ma_crossover")),
        )
    assert res.success
    meta = res.asset_materializations_for_node("ma_crossover_sweep")[0].metadata
    assert meta["resumed_chunks"].value == 2
    assert meta["abandoned_runs_marked_failed"].value == 1
    runs = [
        r for r in _runs(home, "ma_crossover") if r.data.tags["alpaca_improved.kind"] == "sweep"
    ]
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    finished = next(r for r in runs if r.info.status == "FINISHED")
    client = Tracker(home).client
    local = client.download_artifacts(finished.info.run_id, "results.parquet", str(tmp_path))
    table = pl.read_parquet(local)
    assert table["params"].n_unique() == table.height == finished.data.metrics["n_trials"]
    # the ledger counts the resumed sweep once
    assert Tracker(home).trials_so_far("ma_crossover") == table.height
    shutil.rmtree(home / "sweeps")


@pytest.mark.slow
def test_two_worker_sweep_equals_one_worker(year_home: Path) -> None:
    from alpaca_improved_pipelines.backtesting import sweep as sw

    data = load_closes(year_home / "lake")
    fam_points = [
        {"window": w, "lower": lo, "upper": 70.0}
        for w in (7, 10, 14, 21)
        for lo in (20.0, 25.0, 30.0)
    ]
    spec = SweepSpec("rsi_reversion", fam_points)
    old = sw.CHUNK
    sw.CHUNK = 3  # four chunks: one here, three on two spawned workers
    try:
        one, _ = sw.run_sweep(spec, data, year_home / "ck1", workers=1)
        two, _ = sw.run_sweep(spec, data, year_home / "ck2", workers=2)
    finally:
        sw.CHUNK = old
    assert one.sort("params").equals(two.sort("params"))
    assert one.height == 12


def test_demo_report_covers_every_view(swept) -> None:
    import datetime as dt

    from rich.console import Console

    from alpaca_improved_pipelines.demo_report import print_report
    from alpaca_improved_pipelines.settings import Settings

    home, _ = swept
    console = Console(record=True, width=200)
    print_report(Settings(home=home), dt.date(2024, 1, 2), dt.date(2024, 12, 31), console)
    text = console.export_text()
    for view in lakehouse.available_views(home):
        assert view in text
    assert "leaderboard" in text and "rsi_reversion" in text and "make mlflow" in text


def test_vectorized_metrics_equal_strategies_analytics() -> None:
    from scipy import stats

    from alpaca_improved_pipelines.backtesting.sweep import metrics_matrix

    rng = np.random.default_rng(11)
    rets = np.column_stack(
        [
            rng.normal(0.0005, 0.01, 300),
            rng.standard_t(4, 300) * 0.01,
            np.zeros(300),
            np.full(300, 0.001),
            -np.abs(rng.normal(0, 0.01, 300)),
        ]
    )
    got = metrics_matrix(rets)
    ref = {
        "sharpe_ratio": analytics.sharpe_ratio,
        "sortino_ratio": analytics.sortino_ratio,
        "annual_return": analytics.annual_return,
        "annual_volatility": analytics.annual_volatility,
        "max_drawdown": analytics.max_drawdown,
        "calmar_ratio": analytics.calmar_ratio,
        "total_return": analytics.cum_returns_final,
    }
    for name, fn in ref.items():
        for k in range(rets.shape[1]):
            want = fn(rets[:, k])
            assert got[name][k] == pytest.approx(want, rel=1e-12, nan_ok=True), (name, k)
    assert got["skew"][1] == pytest.approx(stats.skew(rets[:, 1]), rel=1e-10)
    assert got["kurtosis"][1] == pytest.approx(stats.kurtosis(rets[:, 1], fisher=False), rel=1e-10)
