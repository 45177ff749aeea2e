"""An options strategy backtested over real option_chains partitions, tracked in MLflow."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from alpaca_improved_pipelines.defs.options.assets import option_chains
from alpaca_improved_pipelines.defs.research.assets import options_backtest
from alpaca_improved_pipelines.tracking.mlflow_store import Tracker
from research import lakehouse

from .conftest import fill_lake, quiet, resources_for


@pytest.mark.slow
def test_wheel_over_archived_chains(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fill_lake(home)
    chain_cfg = {
        "ops": {"option_chains": {"config": {"underlyings": ["SPY"], "american_iv": False}}}
    }
    tags = {
        "dagster/asset_partition_range_start": "2024-05-01",
        "dagster/asset_partition_range_end": "2024-06-28",
    }
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [option_chains],
            resources=resources_for(home),
            instance=instance,
            run_config=quiet(chain_cfg),
            tags=tags,
        )
        assert res.success
        out = dg.materialize(
            [options_backtest], resources=resources_for(home), instance=instance, run_config=quiet()
        )
    assert out.success
    meta = out.asset_materializations_for_node("options_backtest")[0].metadata
    assert meta["sessions"].value == 41
    kinds = {d["kind"] for d in meta["fills_by_kind"].value}
    assert "trade" in kinds  # puts were sold; assignments/expiries depend on the path
    tracker = Tracker(home)
    run = tracker.client.get_run(meta["mlflow_run_id"].value)
    assert run.data.tags["alpaca_improved.kind"] == "backtest"
    assert run.data.tags["dagster.partition_range"] == "2024-05-01..2024-06-28"
    files = {a.path for a in tracker.client.list_artifacts(run.info.run_id)}
    assert {"attribution.parquet", "daily.parquet", "fills.parquet"} <= files
    plots = {a.path for a in tracker.client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/greeks_attribution.png", "plots/greeks_attribution.html"} <= plots
    local = tracker.client.download_artifacts(run.info.run_id, "attribution.parquet", str(tmp_path))
    attr = pl.read_parquet(local)
    daily = pl.read_parquet(
        tracker.client.download_artifacts(run.info.run_id, "daily.parquet", str(tmp_path))
    )
    # the attribution explains each day's equity change exactly
    change = daily["equity"].diff().drop_nulls().to_numpy()
    assert attr["total"].to_numpy()[1:] == pytest.approx(change, abs=1e-6)
    con = lakehouse.connect(home)
    row = con.sql(
        "SELECT family, mlflow_run_id FROM backtest_runs WHERE family = 'wheel'"
    ).fetchall()
    assert row == [("wheel", run.info.run_id)]
