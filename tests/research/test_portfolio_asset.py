"""``portfolio_allocation`` on a real lake, MLflow store and Dagster instance: candidates from
sweep_results and an options backtest's MLflow equity, a deployment from live_pnl."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.backtesting.research_tables import write_family
from alpaca_improved_pipelines.defs.research.portfolio import portfolio_allocation
from alpaca_improved_pipelines.defs.research.portfolio_returns import strategy_returns
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker
from contracts.limits import AccountLimits
from research.portfolio import Method, walk_forward_allocation
from tests.live.helpers import deploy
from tests.research_lake import quiet, resources_for

SESSIONS = cal.sessions_between(dt.date(2024, 1, 2), dt.date(2024, 12, 31))
PARAMS = '{"k": 1}'
NODE = "portfolio_allocation"


def _signal_family(home: Path, name: str, rets: np.ndarray) -> None:
    """A sweep's two variants (the best one named by backtest_runs rank 1)."""
    lake = home / "lake"
    write_family(lake, "sweep_results", name, pl.DataFrame({
        "params": ['{"k": 0}', PARAMS], "returns": [list(rets * 0.0 + 0.01), list(rets)],
        "error": [None, None], "family": [name, name]}))  # fmt: skip
    write_family(lake, "backtest_runs", name, pl.DataFrame({
        "family": [name], "rank": [1], "params": [PARAMS], "mlflow_run_id": [None],
        "sweep_run_id": ["sweep-1"], "start": [SESSIONS[0]], "end": [SESSIONS[-1]],
        "data_version": ["v1"]}, schema_overrides={"mlflow_run_id": pl.String}))  # fmt: skip


def _options_family(home: Path, name: str, equity: np.ndarray, sessions: list) -> None:
    tracker = Tracker(home)
    run = tracker.start_run(name, "opt", "options_backtest", RunTags("r", "options_backtest", ""))
    tracker.log_frame(run, pl.DataFrame({"session": sessions, "equity": equity}), "daily.parquet")
    tracker.finish(run)
    write_family(home / "lake", "backtest_runs", name, pl.DataFrame({
        "family": [name], "rank": [1], "params": ["{}"], "mlflow_run_id": [run],
        "sweep_run_id": [None], "start": [sessions[0]], "end": [sessions[-1]],
        "data_version": ["v2"]}, schema_overrides={"sweep_run_id": pl.String}))  # fmt: skip


def _deployment(home: Path, pnl: np.ndarray, sessions: list) -> None:
    deploy(home, "dep-a", capital=50_000.0)
    for s, p in zip(sessions, pnl, strict=True):
        frame = pl.DataFrame({"deployment_id": ["dep-a"], "session": [s], "market_value": [0.0],
                              "cash_flow": [0.0], "pnl": [float(p)], "realized_pnl": [0.0],
                              "unrealized_pnl": [0.0], "collateral": [0.0]})  # fmt: skip
        storage.write_partition(frame, home / "lake", "live_pnl", s, fsync=False)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("portfolio") / "home"
    rng = np.random.default_rng(11)
    base = rng.normal(0.0003, 0.01, len(SESSIONS))
    for k, name in enumerate(("fam_a", "fam_b", "fam_c")):
        _signal_family(home, name, 0.6 * base * (k == 0) + rng.normal(0.0002, 0.008 + 0.004 * k,
                                                                        len(SESSIONS)))  # fmt: skip
    opt = SESSIONS[40:]
    _options_family(home, "opt_x", 1e5 * np.cumprod(1 + rng.normal(0.0004, 0.012, len(opt))), opt)
    _deployment(home, rng.normal(20.0, 400.0, len(SESSIONS) - 100), SESSIONS[100:])
    return home


RUN = {"train": 60, "test": 20, "max_weight": 0.5, "buckets": {"fam_a": "SPY", "opt_x": "SPY"},
       "bucket_caps": {"SPY": 0.45}}  # fmt: skip


def test_returns_come_from_each_source(home: Path) -> None:
    """The best variant's sweep returns, the options equity's pct change, and the deployment's
    P&L over capital plus earlier P&L, on the sessions all share (1e-12)."""
    x, _ = strategy_returns(home, Tracker(home), include_deployments=True)
    assert list(x.columns) == ["fam_a", "fam_b", "fam_c", "opt_x", "live:dep-a"]
    assert list(x.index) == SESSIONS[100:]
    sweep = pl.read_parquet(home / "lake/sweep_results/family=fam_b/part.parquet")
    np.testing.assert_allclose(x["fam_b"], np.asarray(sweep["returns"][1])[100:], atol=1e-12)
    pnl = pl.read_parquet(home / "lake/live_pnl").sort("session")["pnl"].to_numpy()
    before = 50_000.0 + np.concatenate(([0.0], np.cumsum(pnl)[:-1]))
    np.testing.assert_allclose(x["live:dep-a"], pnl / before, atol=1e-12)
    assert strategy_returns(home, Tracker(home), include_deployments=False)[0].shape[1] == 4


def test_asset_logs_weights_and_out_of_sample_to_mlflow(home: Path) -> None:
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [portfolio_allocation],
            resources=resources_for(home),
            instance=instance,
            run_config=quiet({"ops": {"portfolio_allocation": {"config": RUN}}}),
        )
    assert res.success  # fmt: skip
    meta: dict[str, Any] = {
        k: v.value for k, v in res.asset_materializations_for_node(NODE)[0].metadata.items()
    }
    assert meta["strategies"] == 5 and meta["sessions"] == len(SESSIONS) - 100
    assert all(m.startswith("hrp") for m in meta["constraints_not_met"])  # HRP: no group caps
    run = Tracker(home).client.get_run(meta["mlflow_run_id"])
    names = {a.path for a in Tracker(home).client.list_artifacts(run.info.run_id)}
    assert {"weights.parquet", "equity.parquet", "correlation.parquet", "fold_weights.parquet",
            "constraints.parquet", "plots"} <= names  # fmt: skip
    local = Tracker(home).client.download_artifacts(run.info.run_id, "correlation_clusters.json")
    clusters = json.loads(Path(local).read_text())
    assert set(clusters["strategy_clusters"]) == {"fam_a", "fam_b", "fam_c", "opt_x", "live:dep-a"}
    dep_cluster = clusters["correlation_clusters"]
    assert dep_cluster == {"dep-a": clusters["strategy_clusters"]["live:dep-a"]}
    AccountLimits(correlation_clusters=dep_cluster, max_cluster_share=0.5)  # what the runner takes
    x, _ = strategy_returns(home, Tracker(home), include_deployments=True)
    for method in ("risk_parity", "min_variance", "hrp"):
        w = {s: float(run.data.params[f"weight.{method}.{s}"]) for s in x.columns}
        assert sum(w.values()) == pytest.approx(1.0, abs=1e-5)
        assert max(w.values()) <= 0.5 + 1e-5
        if method != "hrp":
            assert w["fam_a"] + w["opt_x"] <= 0.45 + 1e-5
        bt = walk_forward_allocation(x, method, _constraints(), 60, 20)
        for k, v in bt.metrics().items():
            assert run.data.metrics[f"{method}.{k}"] == pytest.approx(v, abs=1e-9)
    assert json.loads(run.data.params["bucket_caps"].replace("'", '"')) == {"SPY": 0.45}


def _constraints():
    from research.portfolio import Constraints

    return Constraints(0.0, 0.5, RUN["buckets"], RUN["bucket_caps"])


def _cause(res: dg.ExecuteInProcessResult) -> Any:
    """The error the asset body raised (under Dagster's step-execution wrapper)."""
    error: Any = res.get_step_failure_events()[0].event_specific_data
    return error.error.cause or error.error


def test_one_strategy_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _signal_family(home, "fam_a", np.random.default_rng(2).normal(0.0, 0.01, len(SESSIONS)))
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [portfolio_allocation],
            resources=resources_for(home),
            instance=instance,
            run_config=quiet(),
            raise_on_error=False,
        )
    assert not res.success  # fmt: skip
    failure = _cause(res)
    assert "1 strategies have daily returns; allocation needs at least 2" in failure.message


def test_unknown_method_names_the_config(home: Path) -> None:
    cfg = {"methods": ["kelly"], "include_deployments": False}
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [portfolio_allocation],
            resources=resources_for(home),
            instance=instance,
            raise_on_error=False,
            run_config=quiet({"ops": {"portfolio_allocation": {"config": cfg}}}),
        )
    assert not res.success  # fmt: skip
    failure = _cause(res)
    assert "portfolio_allocation config: unknown allocation method 'kelly'" in failure.message
    assert Method.HRP.value in failure.message


def test_flat_strategies_and_young_deployments_are_left_out(tmp_path: Path) -> None:
    """A never-trading variant and a deployment sharing 5 sessions are named, not joined."""
    home = tmp_path / "home"
    rng = np.random.default_rng(5)
    for name in ("fam_a", "fam_b"):
        _signal_family(home, name, rng.normal(0.0, 0.01, len(SESSIONS)))
    _signal_family(home, "fam_flat", np.zeros(len(SESSIONS)))
    _deployment(home, rng.normal(0.0, 100.0, 5), SESSIONS[-5:])
    x, notes = strategy_returns(home, Tracker(home), include_deployments=True)
    assert list(x.columns) == ["fam_a", "fam_b"] and len(x) == len(SESSIONS)
    assert notes == ["fam_flat: constant returns (never traded)",
                     "live:dep-a: would leave 5 common sessions (< 20)"]  # fmt: skip


def test_a_short_history_does_not_cut_the_others(tmp_path: Path) -> None:
    """With 141 sessions needed (train 120 + test 21), an options backtest over the last 30
    sessions is left out, not joined: the two families keep their 252 sessions."""
    home = tmp_path / "home"
    rng = np.random.default_rng(6)
    for name in ("fam_a", "fam_b"):
        _signal_family(home, name, rng.normal(0.0, 0.01, len(SESSIONS)))
    short = SESSIONS[-30:]
    _options_family(home, "opt_y", 1e5 * np.cumprod(1 + rng.normal(0, 0.01, 30)), short)
    x, notes = strategy_returns(home, Tracker(home), include_deployments=False, min_sessions=141)
    assert list(x.columns) == ["fam_a", "fam_b"] and len(x) == len(SESSIONS)
    assert notes == ["opt_y: would leave 29 common sessions (< 141)"]
    y, _ = strategy_returns(home, Tracker(home), include_deployments=False)  # floor 20: joined
    assert list(y.columns) == ["fam_a", "fam_b", "opt_y"] and len(y) == 29
