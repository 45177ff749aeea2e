"""Candidates, approval, and the promote_to_live sensor on a real research lake."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from alpaca_improved_pipelines.defs.promotion.assets import approved_manifest, candidates
from alpaca_improved_pipelines.defs.promotion.sensors import deploy_job, promote_to_live
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.tracking.mlflow_store import Tracker
from tests.research.conftest import quiet, resources_for


@pytest.fixture
def home(swept, tmp_path: Path) -> Path:
    src, _ = swept
    dst = tmp_path / "home"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("sweeps"))
    return dst


# gates wide open: these tests are about approval and deployment, not the thresholds
LENIENT = {
    "require_quality_checks": False,
    "min_dsr": 0.0,
    "min_oos_sharpe": -100.0,
    "min_trades": 0,
    "max_drawdown": 1.0,
}


def _candidates(home: Path, instance: dg.DagsterInstance, **cfg: object) -> dict:
    res = dg.materialize(
        [candidates],
        resources=resources_for(home),
        instance=instance,
        run_config=quiet({"ops": {"candidates": {"config": cfg}}}),
    )
    assert res.success
    return {
        c["family"]: c
        for c in json.loads((home / "live" / "candidates.json").read_text())["candidates"]
    }


def test_gates_require_passed_quality_checks(home: Path) -> None:
    with dg.instance_for_test() as instance:  # no check results in this instance
        cands = _candidates(home, instance)
    assert set(cands) == {"ma_crossover", "momentum", "rsi_reversion", "vwap_reversion"}
    for name, c in cands.items():
        assert not c["passed"]
        # each family is gated on the bars it was backtested on (minute bars for vwap_reversion)
        table = "stock_bars_1m" if name == "vwap_reversion" else "stock_bars_1d"
        assert f"no pandera_schema result on {table}" in c["reasons"]


def test_gates_apply_thresholds(home: Path) -> None:
    with dg.instance_for_test() as instance:
        cands = _candidates(home, instance, **LENIENT)
        assert all(c["passed"] for c in cands.values())
        strict = _candidates(home, instance, require_quality_checks=False, min_dsr=0.999999)
    assert all("Deflated Sharpe" in c["reasons"] for c in strict.values())


def test_approval_registers_a_model_and_the_sensor_promotes_once(home: Path) -> None:
    with dg.instance_for_test() as instance:
        _candidates(home, instance, **LENIENT)
        cfg = {"family": "rsi_reversion", "approver": "qa", "reason": "test", "demo": True}
        res = dg.materialize(
            [approved_manifest],
            resources=resources_for(home),
            instance=instance,
            run_config=quiet({"ops": {"approved_manifest": {"config": cfg}}}),
        )
        assert res.success
        meta = res.asset_materializations_for_node("approved_manifest")[0].metadata
        manifest = meta["manifest"].value
        assert manifest["approval"]["approver"] == "qa" and manifest["approval"]["demo"]
        assert len(manifest["git_sha"]) == 40 and manifest["mlflow_run_id"]
        mv = Tracker(home).client.get_model_version_by_alias(
            "alpaca-improved-rsi_reversion", "live"
        )
        assert str(mv.version) == meta["mlflow_model_version"].value
        lake = LakeResource(home=str(home))
        ctx = dg.build_sensor_context(instance=instance, cursor=None, resources={"lake": lake})
        first = promote_to_live(ctx)
        again = promote_to_live(
            dg.build_sensor_context(instance=instance, cursor=None, resources={"lake": lake})
        )
        assert [r.run_key for r in first.run_requests] == [r.run_key for r in again.run_requests]
        assert len(first.run_requests) == 1
        after = promote_to_live(
            dg.build_sensor_context(
                instance=instance, cursor=first.cursor, resources={"lake": lake}
            )
        )
        assert isinstance(after, dg.SkipReason)
        req = first.run_requests[0]
        out = deploy_job.execute_in_process(
            run_config=req.run_config, instance=instance, resources={"lake": lake}
        )
        assert out.success
    from live.deployments.manifests import load_manifest  # the live runner accepts what we deploy

    dep = load_manifest(home / "live" / "deployments" / "rsi_reversion.json")
    assert dep.manifest.manifest_id == manifest["manifest_id"]
    assert dep.strategy.name == "rsi_reversion"


def test_unknown_or_failed_candidate_cannot_be_approved(home: Path) -> None:
    with dg.instance_for_test() as instance:
        _candidates(home, instance)  # all fail: no quality-check results in this instance
        for family, msg in (("wheel", "is not a candidate"), ("ma_crossover", "failed its gates")):
            cfg = {"family": family, "approver": "qa", "reason": "x"}
            res = dg.materialize(
                [approved_manifest],
                resources=resources_for(home),
                instance=instance,
                raise_on_error=False,
                run_config=quiet({"ops": {"approved_manifest": {"config": cfg}}}),
            )
            assert not res.success
            text = " ".join(str(e.event_specific_data) for e in res.all_events if e.is_step_failure)
            assert msg in text
    assert not (home / "live" / "manifests").exists()


def test_live_results_flow_back_into_the_lake(home: Path) -> None:
    import datetime as dt
    import subprocess
    import sys

    from alpaca_improved_pipelines.calendar import NEW_YORK
    from alpaca_improved_pipelines.defs.monitoring.assets import live_results
    from research import lakehouse

    with dg.instance_for_test() as instance:
        _candidates(home, instance, **LENIENT)
        cfg = {"family": "rsi_reversion", "approver": "qa", "reason": "test", "demo": True}
        assert dg.materialize(
            [approved_manifest],
            resources=resources_for(home),
            instance=instance,
            run_config=quiet({"ops": {"approved_manifest": {"config": cfg}}}),
        ).success
        lake = LakeResource(home=str(home))
        req = promote_to_live(
            dg.build_sensor_context(instance=instance, resources={"lake": lake})
        ).run_requests[0]
        assert deploy_job.execute_in_process(
            run_config=req.run_config, instance=instance, resources={"lake": lake}
        ).success
        start = dt.datetime(2024, 12, 24, 16, 30, tzinfo=NEW_YORK).isoformat()
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "live.cli",
                "run",
                "--broker",
                "sim",
                "--home",
                str(home),
                "--cycles",
                "5",
                "--cycle-seconds",
                "86400",
                "--sim-start",
                start,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        res = dg.materialize(
            [live_results], resources=resources_for(home), instance=instance, run_config=quiet()
        )
    assert res.success
    con = lakehouse.connect(home)
    n_orders, n_fills = con.execute(
        "SELECT (SELECT count(*) FROM live_orders), (SELECT count(*) FROM live_fills)"
    ).fetchone()
    assert n_orders > 0 and n_fills > 0
    # the daily P&L adds up to the mark-to-market of the fills at the last close
    total = con.execute("SELECT sum(pnl) FROM live_pnl").fetchone()[0]
    mtm = con.execute("""
        SELECT sum(f.qty * (c.close - f.price)) FROM live_fills f
        JOIN (SELECT symbol, arg_max(close, session) AS close FROM stock_bars_1d GROUP BY 1) c
        USING (symbol)""").fetchone()[0]
    assert total == pytest.approx(mtm, abs=1e-6)
    drift = res.asset_materializations_for_node("live_results")[0].metadata["drift"].value
    assert "fill_rate" in drift and "slippage_bps_mean" in drift
