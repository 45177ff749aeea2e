"""Real materializations of option_chains and vol_surface on a temp lake and Dagster instance."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from alpaca_improved_pipelines.defs.options.chains import OPTION_CHAIN_SCHEMA
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.resources.sources import SyntheticSource
from research import lakehouse

from .conftest import options_defs, run_options

SESSIONS = ["2024-01-08", "2024-01-09", "2024-01-10"]
RANK = {"ops": {"vol_surface": {"config": {"min_history": 2}}}}


class BidAboveAskSource(SyntheticSource):
    """The synthetic source with one crossed quote per chain (a contract violation)."""

    def option_chain(self, underlying: str, session: dt.date) -> pl.DataFrame:
        chain = super().option_chain(underlying, session)
        first = pl.int_range(pl.len()) == 0
        return chain.with_columns(
            pl.when(first).then(pl.col("ask") + 1.0).otherwise("bid").alias("bid")
        )


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory, project_defs: dg.Definitions):
    """One options_job run over three sessions (shared by the tests below)."""
    home = tmp_path_factory.mktemp("options") / "home"
    defs = options_defs(project_defs, home)
    with dg.instance_for_test() as instance:
        result = run_options(defs, instance, SESSIONS[0], SESSIONS[-1], RANK)
        assert result.success
        yield home, result


def test_range_run_writes_every_session_and_passes_its_gates(backfilled) -> None:
    home, result = backfilled
    for table in ("option_chains", "vol_surface"):
        assert storage.existing_sessions(home / "lake", table) == SESSIONS
    evaluations = {
        (e.asset_check_key.asset_key.to_user_string(), e.asset_check_key.name): e
        for e in result.get_asset_check_evaluations()
    }
    assert set(evaluations) == {
        ("option_chains", "pandera_schema"),
        ("option_chains", "put_call_parity"),
        ("vol_surface", "pandera_schema"),
    }
    assert all(e.passed for e in evaluations.values()), evaluations
    chain = pl.read_parquet(storage.partition_path(home / "lake", "option_chains", SESSIONS[-1]))
    assert chain.schema == pl.Schema(OPTION_CHAIN_SCHEMA)
    assert set(chain["underlying"]) == {"SPY", "AAPL", "NVDA"}


def test_metadata_reports_agreement_status_and_plots(backfilled) -> None:
    _, result = backfilled
    mats = {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    chains, surface = mats["option_chains"], mats["vol_surface"]
    assert "iv_american" in chains["vendor_agreement"].value
    assert "OK" in chains["iv_status"].value
    assert chains["plot"].value.startswith("![") and surface["plot"].value.startswith("![")
    assert chains["dagster/row_count"].value > 10_000
    assert "SPY" in surface["summary_last_session"].value


def test_duckdb_views_and_iv_rank_history(backfilled) -> None:
    home, _ = backfilled
    con = lakehouse.connect(home)
    n = con.sql("SELECT count(*) AS n FROM option_chains WHERE iv_status = 'OK'").pl()
    assert n["n"][0] > 10_000
    ranks = con.sql(
        "SELECT session, any_value(iv_history) AS h, any_value(iv_rank_status) AS s, "
        "any_value(iv_rank) AS r FROM vol_surface WHERE underlying = 'SPY' "
        "GROUP BY session ORDER BY session"
    ).pl()
    assert ranks["h"].to_list() == [0, 1, 2]
    assert ranks["s"].to_list() == ["short_history", "short_history", "ok"]
    assert ranks["r"][2] is not None and 0.0 <= ranks["r"][2] <= 1.0


def test_single_session_alone_equals_range_byte_for_byte(
    backfilled, project_defs: dg.Definitions, tmp_path: Path
) -> None:
    range_home, _ = backfilled
    alone = tmp_path / "alone"
    defs = options_defs(project_defs, alone)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey("option_chains")}
    )
    with dg.instance_for_test() as instance:
        assert job.execute_in_process(instance=instance, partition_key=SESSIONS[1]).success
    a = storage.partition_path(range_home / "lake", "option_chains", SESSIONS[1]).read_bytes()
    b = storage.partition_path(alone / "lake", "option_chains", SESSIONS[1]).read_bytes()
    assert a == b


def test_failed_blocking_gate_stops_vol_surface(
    project_defs: dg.Definitions, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    home = tmp_path / "home"
    defs = options_defs(project_defs, home, {"source": BidAboveAskSource()})
    result = run_options(defs, instance, SESSIONS[0], SESSIONS[0])
    assert not result.success
    gate = next(
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_check_key.name == "pandera_schema"
    )
    assert not gate.passed and "bid_le_ask" in str(gate.metadata["failed_checks"].value)
    assert storage.existing_sessions(home / "lake", "option_chains") == [SESSIONS[0]]
    assert storage.existing_sessions(home / "lake", "vol_surface") == []
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"option_chains"}
