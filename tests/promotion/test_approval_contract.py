"""What an approval decides reaches the live runner intact: every risk limit (a daily-loss limit
always) and the costs of the sweep that selected the strategy.

approval -> approved manifest -> promote_to_live sensor -> deployment file -> the runner, which
enforces those limits (not ``RiskLimits()`` defaults) and shows them in ``/health`` and
``live status``; and the live reference backtest charges the sweep's costs.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import urllib.request
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from alpaca_improved_pipelines.backtesting.reference import deployment_reference
from alpaca_improved_pipelines.defs.promotion.assets import approved_manifest, candidates
from alpaca_improved_pipelines.defs.promotion.sensors import deploy_job, promote_to_live
from alpaca_improved_pipelines.defs.research.assets import SWEEPS
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.resources.lake import LakeResource
from contracts import paths
from contracts.calendar import NEW_YORK
from contracts.limits import GreekLimits, RiskLimits, derived_risk_limits
from contracts.manifest import DeploymentManifest, SignalCosts, read_manifest
from live.runner.build import build_runner
from live.runner.config import RunnerConfig
from live.runner.status import journal_status
from tests.research.conftest import SYMBOLS, quiet, resources_for

pytestmark = pytest.mark.slow  # the session's sweeps, then approvals and a runner

LENIENT = {"require_quality_checks": False, "min_dsr": 0.0, "min_oos_sharpe": -100.0,
           "min_trades": 0, "max_drawdown": 1.0}  # fmt: skip


@pytest.fixture
def home(swept, tmp_path: Path) -> Path:
    src, _ = swept
    dst = tmp_path / "home"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("sweeps"))
    return dst


def approve_and_deploy(home: Path, instance: dg.DagsterInstance, **approval: object) -> Path:
    """candidates -> approved_manifest -> promote_to_live -> deploy_job; the deployment file."""
    resources = resources_for(home)
    run = {"ops": {"candidates": {"config": LENIENT}}}
    assert dg.materialize([candidates], resources=resources, instance=instance,
                          run_config=quiet(run)).success  # fmt: skip
    cfg = {"family": "rsi_reversion", "approver": "qa", "reason": "test", **approval}
    run = {"ops": {"approved_manifest": {"config": cfg}}}
    assert dg.materialize([approved_manifest], resources=resources, instance=instance,
                          run_config=quiet(run)).success  # fmt: skip
    lake = LakeResource(home=str(home))
    (req,) = promote_to_live(
        dg.build_sensor_context(instance=instance, resources={"lake": lake})
    ).run_requests
    assert deploy_job.execute_in_process(
        run_config=req.run_config, instance=instance, resources={"lake": lake}
    ).success
    return paths.deployments_dir(home) / "rsi_reversion.json"


def lowest_last_close(home: Path) -> float:
    lake = paths.lake_dir(home)
    last = storage.existing_sessions(lake, "stock_bars_1d")[-1]
    bars = pl.read_parquet(storage.partition_path(lake, "stock_bars_1d", last))
    return float(bars.filter(pl.col("symbol").is_in(SYMBOLS))["close"].min())


def test_the_runner_enforces_the_limits_the_deployment_was_approved_with(home: Path) -> None:
    with dg.instance_for_test() as instance:
        path = approve_and_deploy(
            home, instance, capital=50_000.0, max_daily_loss=750.0, max_vega=123.0
        )
    deployed = read_manifest(path)
    approved = read_manifest(paths.manifests_dir(home) / f"{deployed.manifest_id}.json")
    # set by the approver where given, derived from the capital otherwise
    derived = derived_risk_limits(50_000.0, lowest_last_close(home))
    expected = derived.model_copy(
        update={"max_daily_loss": 750.0,
                "greeks": GreekLimits(**{**derived.greeks.model_dump(), "vega": 123.0})}
    )  # fmt: skip
    assert deployed.risk_limits == approved.risk_limits == expected
    assert expected.greeks.delta == pytest.approx(2 * 50_000.0 / lowest_last_close(home))
    assert deployed.risk_limits != RiskLimits()  # what every deployment used to run on
    assert deployed.approval is not None
    assert deployed.approval.limits_set == ("max_daily_loss", "max_vega")
    assert deployed.capital == 50_000.0 and deployed.deployment_id == "rsi_reversion"

    start = dt.datetime(2024, 12, 24, 16, 30, tzinfo=NEW_YORK)
    config = RunnerConfig(home=home, broker="sim", cycle_seconds=86_400, sim_start=start,
                          health_port=0)  # fmt: skip
    runner, health = build_runner(config)
    assert health is not None
    try:
        runner.run(cycles=2)
        with urllib.request.urlopen(f"http://127.0.0.1:{health.port}/health", timeout=5) as r:
            served = json.loads(r.read())
        status = journal_status(runner.j)
        enforced = runner.deployments.active["rsi_reversion"].manifest.risk_limits
    finally:
        health.close()
        runner.j.close()
    assert enforced == expected  # the risk engine's per-deployment limits
    want = expected.model_dump(mode="json")
    assert served["limits"]["rsi_reversion"] == want
    assert status["limits"]["rsi_reversion"] == want


def test_the_manifest_records_the_sweep_costs_and_the_reference_charges_them(
    home: Path,
) -> None:
    sweep = {"workers": 1, "fees": 0.004, "slippage": 0.002, "search": "random", "n_random": 6}
    with dg.instance_for_test() as instance:
        assert dg.materialize(
            [SWEEPS["rsi_reversion"]], resources=resources_for(home), instance=instance,
            run_config=quiet({"ops": {"rsi_reversion_sweep": {"config": sweep}}}),
        ).success  # fmt: skip
        path = approve_and_deploy(home, instance)
    manifest = read_manifest(path)
    assert manifest.costs == SignalCosts(fees=0.004, slippage=0.002)
    # the approver set no limit: all derived, and a daily-loss limit exists all the same
    assert manifest.risk_limits.max_daily_loss == pytest.approx(0.02 * 100_000.0)
    assert None not in manifest.risk_limits.greeks.model_dump().values()
    window = (dt.date(2024, 6, 3), dt.date(2024, 12, 31))
    charged = deployment_reference(home, manifest, *window)
    default = manifest.model_copy(update={"costs": SignalCosts(fees=0.001, slippage=0.0005)})
    research = deployment_reference(home, default, *window)
    assert charged.orders.height == research.orders.height > 0  # same signals, other costs
    buys = charged.orders.filter(pl.col("side") == "buy")
    ref_buys = research.orders.filter(pl.col("side") == "buy")
    # fills 0.2% above the close, not 0.05%: the sweep's slippage
    ratio = (buys["price"] / ref_buys["price"]).to_numpy()
    assert ratio == pytest.approx((1 + 0.002) / (1 + 0.0005))
    growth = (charged.returns["ret"] + 1).product(), (research.returns["ret"] + 1).product()
    assert growth[0] < growth[1]  # dearer fees and slippage cost return


def test_a_candidate_without_recorded_costs_is_not_approved(home: Path) -> None:
    from alpaca_improved_pipelines.backtesting import research_tables

    lake = paths.lake_dir(home)
    runs = research_tables.read_family(lake, "backtest_runs", "rsi_reversion")
    research_tables.write_family(lake, "backtest_runs", "rsi_reversion", runs.drop("costs"))
    cfg = {"family": "rsi_reversion", "approver": "qa", "reason": "test"}
    with dg.instance_for_test() as instance:
        resources = resources_for(home)
        assert dg.materialize([candidates], resources=resources, instance=instance,
                              run_config=quiet({"ops": {"candidates": {"config": LENIENT}}})
                              ).success  # fmt: skip
        res = dg.materialize(
            [approved_manifest], resources=resources, instance=instance, raise_on_error=False,
            run_config=quiet({"ops": {"approved_manifest": {"config": cfg}}}),
        )  # fmt: skip
    assert not res.success
    text = " ".join(str(e.event_specific_data) for e in res.all_events if e.is_step_failure)
    assert "does not record its costs" in text
    assert not any(paths.manifests_dir(home).glob("*.json"))


def test_deployment_manifest_is_the_contract_type() -> None:
    from live.deployments import manifests as deployments

    assert deployments.DeploymentManifest is DeploymentManifest
