"""Real materializations on a temp lake and a temp Dagster instance."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from alpaca_improved_pipelines.defs.resources import build_resources
from alpaca_improved_pipelines.lake import storage
from research import lakehouse

from .conftest import make_settings, run_sessions, with_resources

BAR_TABLES = ("stock_bars_1m", "stock_bars_1d", "stock_bars_5m", "stock_bars_1h")


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory, project_defs: dg.Definitions):
    """One range run over 2024-01-02..2024-01-12 (shared by the tests below)."""
    home = tmp_path_factory.mktemp("range") / "home"
    defs = with_resources(project_defs, build_resources(make_settings(home)))
    with dg.instance_for_test() as instance:
        result = run_sessions(defs, instance, "2024-01-02", "2024-01-12")
        assert result.success
        yield home, defs, instance, result


def test_range_run_writes_every_session_and_passes_every_check(backfilled) -> None:
    home, _, _, result = backfilled
    for table in (*BAR_TABLES, "indicators_1d"):
        assert storage.existing_sessions(home / "lake", table) == [
            "2024-01-02",
            "2024-01-03",
            "2024-01-04",
            "2024-01-05",
            "2024-01-08",
            "2024-01-09",
            "2024-01-10",
            "2024-01-11",
            "2024-01-12",
        ]
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 11
    blocking = [e for e in evaluations if e.asset_check_key.name != "anomalies"]
    assert all(e.passed for e in blocking), [
        (e.asset_check_key, e.metadata) for e in blocking if not e.passed
    ]


def test_single_partition_alone_equals_range_backfill_byte_for_byte(
    backfilled, project_defs: dg.Definitions, tmp_path: Path
) -> None:
    range_home, _, _, _ = backfilled
    alone = tmp_path / "alone"
    defs = with_resources(project_defs, build_resources(make_settings(alone)))
    with dg.instance_for_test() as instance:
        job = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={dg.AssetKey(t) for t in BAR_TABLES}
        )
        assert job.execute_in_process(instance=instance, partition_key="2024-01-09").success
    for table in BAR_TABLES:
        a = storage.partition_path(range_home / "lake", table, "2024-01-09").read_bytes()
        b = storage.partition_path(alone / "lake", table, "2024-01-09").read_bytes()
        assert a == b, table


def test_rematerialization_is_idempotent(backfilled) -> None:
    home, defs, instance, _ = backfilled
    before = {
        t: storage.file_sha256(storage.partition_path(home / "lake", t, "2024-01-11"))
        for t in (*BAR_TABLES, "indicators_1d")
    }
    assert run_sessions(defs, instance, "2024-01-11", "2024-01-11").success
    after = {
        t: storage.file_sha256(storage.partition_path(home / "lake", t, "2024-01-11"))
        for t in before
    }
    assert before == after


def test_views_are_the_query_contract(backfilled) -> None:
    home, _, _, _ = backfilled
    con = lakehouse.connect(home)
    for view in ("stock_bars_1d", "stock_bars_1m", "indicators_1d"):
        assert view in lakehouse.available_views(home)
    cols = {r[0]: r[1] for r in con.execute("DESCRIBE stock_bars_1d").fetchall()}
    for c in (
        "symbol",
        "ts",
        "session",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "vwap",
        "trade_count",
        "source",
    ):
        assert c in cols
    assert cols["ts"] in ("TIMESTAMPTZ_NS", "TIMESTAMP WITH TIME ZONE")
    assert cols["session"] == "DATE"
    n, syms = con.execute("SELECT count(*), count(DISTINCT symbol) FROM stock_bars_1d").fetchone()
    assert (n, syms) == (27, 3)
    # daily resample of minute bars through the views equals the daily table
    got = con.execute("""
        SELECT m.symbol, m.session, max(m.high) = d.high AND min(m.low) = d.low
               AND sum(m.volume) = d.volume
        FROM stock_bars_1m m JOIN stock_bars_1d d USING (symbol, session)
        GROUP BY m.symbol, m.session, d.high, d.low, d.volume""").fetchall()
    assert len(got) == 27 and all(r[2] for r in got)


def test_symbol_subset_run_merges_and_never_loses_other_symbols(backfilled) -> None:
    home, defs, instance, _ = backfilled
    before = pl.read_parquet(storage.partition_path(home / "lake", "stock_bars_1d", "2024-01-10"))
    cfg = {"config": {"symbols": ["AAPL"]}}
    res = run_sessions(
        defs,
        instance,
        "2024-01-10",
        "2024-01-10",
        run_config={"ops": {"stock_bars_1m": cfg, "stock_bars_1d": cfg}},
    )
    assert res.success
    after = pl.read_parquet(storage.partition_path(home / "lake", "stock_bars_1d", "2024-01-10"))
    assert sorted(after["symbol"].to_list()) == ["AAPL", "NVDA", "SPY"]
    assert after.sort("symbol").equals(before.sort("symbol"))


def test_materialization_metadata_is_useful(backfilled) -> None:
    _, _, instance, result = backfilled
    mats = result.asset_materializations_for_node("stock_bars_1d")
    meta = mats[0].metadata
    assert meta["dagster/row_count"].value == 27
    assert meta["sessions"].value.startswith("2024-01-02 .. 2024-01-12")
    assert "data:image/png;base64" in meta["plot"].value
    assert len(meta["data_version"].value) == 64
    gaps = result.asset_materializations_for_node("stock_bars_1m")[0].metadata
    assert "missing_minutes" in gaps and gaps["gap_fill"].value == "off"


def test_instance_records_partition_status(backfilled) -> None:
    _, _, instance, _ = backfilled
    keys = instance.get_materialized_partitions(dg.AssetKey("stock_bars_1d"))
    assert "2024-01-05" in keys and "2024-01-06" not in keys
    assert len(keys) == 9
