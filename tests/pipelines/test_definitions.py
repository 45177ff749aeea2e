"""The code location loads, and its asset graph is a deliberate, snapshotted shape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

EXPECTED_ASSETS = {
    "stock_bars_1m",
    "stock_bars_1d",
    "stock_bars_5m",
    "stock_bars_1h",
    "indicators_1d",
    "ma_crossover_sweep",
    "momentum_sweep",  # issue 10: generated from the registry like the others
    "rsi_reversion_sweep",
    "vwap_reversion_sweep",  # issue 11: the intraday (minute-bar) family
    "walk_forward",
    "leaderboard",
    "options_backtest",
    "candidates",
    "approved_manifest",
    "live_results",
    "live_replay",
    "option_chains",
    "vol_surface",
    "stream_reconciliation",  # issue 11: the stream vs the nightly REST bars
    "stress_scenarios",  # issue 14: scenario grids and historical windows per book
    "factor_attribution",  # issue 14: market beta beside the Greek split
    "portfolio_allocation",  # issue 14: risk parity / min variance / HRP across strategies
    "gbm_signal_model",  # issue 14: the ML signal family's trained, registered model
}
EXPECTED_CHECKS = {
    ("stock_bars_1m", "pandera_schema"),
    ("stock_bars_1m", "expectations"),
    ("stock_bars_1m", "anomalies"),
    ("stock_bars_1d", "pandera_schema"),
    ("stock_bars_1d", "expectations"),
    ("stock_bars_1d", "anomalies"),
    ("stock_bars_5m", "pandera_schema"),
    ("stock_bars_5m", "expectations"),
    ("stock_bars_1h", "pandera_schema"),
    ("stock_bars_1h", "expectations"),
    ("indicators_1d", "pandera_schema"),
    ("option_chains", "pandera_schema"),
    ("option_chains", "put_call_parity"),
    ("vol_surface", "pandera_schema"),
    ("live_replay", "replay_matches_backtest"),
    ("gbm_signal_model", "registered_model_hash"),
}


def test_definitions_validate(project_defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(project_defs)


def test_asset_keys_snapshot(project_defs: dg.Definitions) -> None:
    graph = project_defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == EXPECTED_ASSETS


def test_check_keys_snapshot(project_defs: dg.Definitions) -> None:
    graph = project_defs.resolve_asset_graph()
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert checks == EXPECTED_CHECKS


def test_blocking_gates_are_blocking(project_defs: dg.Definitions) -> None:
    for checks_def in project_defs.asset_checks or []:
        for spec in checks_def.check_specs:
            assert spec.blocking == (spec.name not in {"anomalies", "put_call_parity"}), spec.key


def test_every_asset_has_a_description_and_group(project_defs: dg.Definitions) -> None:
    graph = project_defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.group_name in {
            "market_data",
            "features",
            "research",
            "options",
            "promotion",
            "monitoring",
            "risk",
        }, key


def test_promotion_sensor_and_jobs_exist(project_defs: dg.Definitions) -> None:
    sensor = project_defs.resolve_sensor_def("promote_to_live")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    for job in ("approve_job", "deploy_job", "research_job", "options_job"):
        assert project_defs.resolve_job_def(job) is not None


def test_schedule_and_job_exist(project_defs: dg.Definitions) -> None:
    sched = project_defs.resolve_schedule_def("nightly_market_data")
    assert sched.default_status == dg.DefaultScheduleStatus.RUNNING
    assert sched.execution_timezone == "America/New_York"
    assert project_defs.resolve_job_def("market_data_job").partitions_def is not None


def test_vendor_and_mlflow_steps_are_capped_by_pools(project_defs: dg.Definitions) -> None:
    """Every asset that calls a vendor API (needs ``source``) is in the vendor pool, every asset
    that logs to MLflow (needs ``tracking``) in the MLflow pool, and no other asset is pooled;
    the instance caps each pool (``concurrency.pools.default_limit``)."""
    from alpaca_improved_pipelines.defs.resources import MLFLOW_POOL, VENDOR_POOL
    from alpaca_improved_pipelines.runner import DAGSTER_YAML

    seen = {VENDOR_POOL: 0, MLFLOW_POOL: 0}
    for ad in project_defs.resolve_asset_graph().assets_defs:
        if not ad.is_executable:
            continue
        needs = ad.required_resource_keys
        want = VENDOR_POOL if "source" in needs else MLFLOW_POOL if "tracking" in needs else None
        names = sorted(k.to_user_string() for k in ad.keys)
        assert ad.op.pool == want, f"{names} needs {sorted(needs)}: pool {ad.op.pool!r}"
        if want:
            seen[want] += 1
    assert seen[VENDOR_POOL] >= 3 and seen[MLFLOW_POOL] >= 5
    assert "pools:\n    default_limit: 1" in DAGSTER_YAML


@pytest.mark.slow
def test_dg_check_defs(tmp_path: Path) -> None:
    """`dg check defs` (the dg CLI's own loader) accepts the project."""
    root = Path(__file__).resolve().parents[2]
    dg_bin = Path(sys.executable).parent / "dg"
    env = {
        **os.environ,
        "ALPACA_IMPROVED_HOME": str(tmp_path),
        "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
    }
    out = subprocess.run(
        [str(dg_bin), "check", "defs"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "All definitions loaded successfully" in out.stdout + out.stderr
