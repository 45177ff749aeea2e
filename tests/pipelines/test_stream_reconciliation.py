"""stream_reconciliation: a real Dagster materialization comparing the stream with REST bars.

The REST truth is the synthetic source's minute bars in a temp lake's stock_bars_1m. The stream
partition is written by the live stream writer from those very bars, with known damage: minutes
it missed, revisions that disagree, a value inside the tolerance, backfilled minutes, and a minute
REST does not have. Every damage must be reported, nothing else.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from alpaca_improved_pipelines.defs.market_data.stream_reconciliation import (
    SCHEMA,
    stream_reconciliation,
)
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.sources import synthetic_bars
from live.market.stream.lake_writer import StreamLakeWriter
from live.market.stream.model import MinuteBar
from research import lakehouse

SESSION = "2024-01-10"


def _bar(row: dict, source: str = "stream", **change: float) -> MinuteBar:
    values = {**row, **change}
    return MinuteBar(
        values["symbol"], values["ts"], values["open"], values["high"], values["low"],
        values["close"], values["volume"], values["vwap"], values["trade_count"],
        source,  # type: ignore[arg-type]
    )  # fmt: skip


def _materialize(home: Path, instance: dg.DagsterInstance, **config: float):
    return dg.materialize(
        [stream_reconciliation],
        partition_key=SESSION,
        resources={"lake": LakeResource(home=str(home), fsync=False)},
        instance=instance,
        run_config={"ops": {"stream_reconciliation": {"config": config}}} if config else None,
    )


@pytest.fixture
def rest_lake(home: Path) -> pl.DataFrame:
    """The session's REST stock_bars_1m: the synthetic source's minute bars, as the nightly
    stock_bars_1m asset writes them (materializing it takes ~30 s on this machine)."""
    bars = synthetic_bars.minute_bars(7, ("SPY", "AAPL", "NVDA"), dt.date.fromisoformat(SESSION))
    storage.write_partition(bars, home / "lake", "stock_bars_1m", SESSION, fsync=False)
    return storage.read_partition(home / "lake", "stock_bars_1m", SESSION, BAR_SCHEMA)


def test_every_disagreement_is_a_row_and_agreement_is_silent(
    rest_lake: pl.DataFrame, home: Path, instance: dg.DagsterInstance
) -> None:
    rest = rest_lake.sort("symbol", "ts")
    spy = rest.filter(pl.col("symbol") == "SPY").to_dicts()
    aapl = rest.filter(pl.col("symbol") == "AAPL").to_dicts()
    # the stream covers SPY and AAPL from their 11th to 300th minute (NVDA was not streamed)
    writer = StreamLakeWriter(home, fsync=False)
    missed = {(spy[50]["ts"]), (spy[51]["ts"])}
    for rows in (spy, aapl):
        for row in rows[10:300]:
            if row["symbol"] == "SPY" and row["ts"] in missed:
                continue
            writer.on_bar(_bar(row))
    writer.on_bar(_bar(aapl[100], "revision", close=aapl[100]["close"] * 1.01))  # 100 bps off
    writer.on_bar(_bar(aapl[101], "revision", close=aapl[101]["close"] + 0.001))  # inside
    writer.on_bar(_bar(aapl[102], "revision", volume=aapl[102]["volume"] * 2))  # volume off
    premarket = spy[0]["ts"] - dt.timedelta(minutes=45)  # 08:45: REST has regular hours only
    writer.on_bar(_bar({**spy[0], "ts": premarket}))
    writer.close()
    assert storage.read_partition(home / "lake", "stream_bars_1m", SESSION).height == 579
    # REST lost one minute the stream has
    extra = aapl[200]["ts"]
    storage.write_partition(
        rest.filter(~((pl.col("symbol") == "AAPL") & (pl.col("ts") == extra))),
        home / "lake", "stock_bars_1m", SESSION, fsync=False,
    )  # fmt: skip

    result = _materialize(home, instance)
    assert result.success
    found = storage.read_partition(home / "lake", "stream_reconciliation", SESSION, SCHEMA)
    by_kind = {k: g for (k,), g in found.partition_by("kind", as_dict=True).items()}
    assert sorted(by_kind) == ["only_rest", "only_stream", "values"]
    assert sorted(by_kind["only_rest"]["ts"].to_list()) == sorted(missed)
    assert by_kind["only_rest"]["symbol"].unique().to_list() == ["SPY"]
    assert by_kind["only_stream"]["ts"].to_list() == [extra]
    values = by_kind["values"].sort("ts")
    assert values["ts"].to_list() == [aapl[100]["ts"], aapl[102]["ts"]]
    assert values["fields"].to_list() == ["close", "volume"]
    assert values["stream_source"].to_list() == ["revision", "revision"]
    assert values["max_price_diff_bps"][0] == pytest.approx(100.0, rel=1e-6)
    assert values["volume_diff_pct"][1] == pytest.approx(100.0, rel=1e-9)
    assert found["session"].unique().cast(pl.String).to_list() == [SESSION]

    meta = result.asset_materializations_for_node("stream_reconciliation")[0].metadata
    assert meta["dagster/row_count"].value == found.height == 5
    assert meta["only_rest"].value == 2 and meta["only_stream"].value == 1
    assert meta["values_outside_tolerance"].value == 2
    assert meta["revisions"].value == 3
    assert meta["matched_minutes"].value == 288 + 290 - 1
    assert meta["stream_extended_hours_bars"].value == 1 and meta["stream_bars"].value == 578
    assert meta["status"].value == "reconciled"
    assert "| only_rest |" in meta["worst"].value and "SPY" in meta["worst"].value
    # the view reads it
    con = lakehouse.connect(home)
    assert con.sql("SELECT count(*) FROM stream_reconciliation").fetchall() == [(5,)]

    # looser tolerances (150 bps on prices, 150 % on volume) keep only the missing minutes
    loose = _materialize(home, instance, price_rel_tolerance_bps=150.0, volume_tolerance_pct=150.0)
    assert loose.success
    again = storage.read_partition(home / "lake", "stream_reconciliation", SESSION, SCHEMA)
    assert sorted(again["kind"].to_list()) == ["only_rest", "only_rest", "only_stream"]


def test_a_backfilled_minute_is_counted(
    rest_lake: pl.DataFrame, home: Path, instance: dg.DagsterInstance
) -> None:
    rows = rest_lake.filter(pl.col("symbol") == "NVDA").sort("ts").to_dicts()
    writer = StreamLakeWriter(home, fsync=False)
    for i, row in enumerate(rows[:30]):
        writer.on_bar(_bar(row, "backfill" if i in (5, 6) else "stream"))
    writer.close()
    result = _materialize(home, instance)
    meta = result.asset_materializations_for_node("stream_reconciliation")[0].metadata
    assert meta["backfills"].value == 2 and meta["dagster/row_count"].value == 0
    assert storage.read_partition(home / "lake", "stream_reconciliation", SESSION).height == 0


def test_a_session_without_a_stream_is_an_empty_labelled_result(
    home: Path, instance: dg.DagsterInstance
) -> None:
    result = _materialize(home, instance)
    assert result.success
    meta = result.asset_materializations_for_node("stream_reconciliation")[0].metadata
    assert meta["dagster/row_count"].value == 0
    assert meta["status"].value.startswith(f"no stream_bars_1m partition for {SESSION}")
    assert "alpaca-improved stream run" in meta["status"].value
    assert not storage.partition_path(home / "lake", "stream_reconciliation", SESSION).exists()


def test_the_latest_session_reconciles_once_its_rest_bars_land(
    project_defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    """The project's sensor runs the asset's eager condition: nothing while REST is missing,
    the session once stock_bars_1m is materialized, and not again for the same event."""
    sensor = project_defs.resolve_sensor_def("stream_reconciliation_after_rest")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    key = dg.AssetKey("stream_reconciliation")
    at = dt.datetime(2024, 1, 10, 19, 0, tzinfo=dt.UTC)  # 14:00 New York: 2024-01-10 is latest
    first = dg.evaluate_automation_conditions(
        defs=project_defs, instance=instance, asset_selection=dg.AssetSelection.assets(key),
        evaluation_time=at,
    )  # fmt: skip
    assert first.get_requested_partitions(key) == set()
    instance.report_runless_asset_event(dg.AssetMaterialization("stock_bars_1m", partition=SESSION))
    after = dg.evaluate_automation_conditions(
        defs=project_defs, instance=instance, asset_selection=dg.AssetSelection.assets(key),
        evaluation_time=at + dt.timedelta(hours=5), cursor=first.cursor,
    )  # fmt: skip
    assert after.get_requested_partitions(key) == {SESSION}
    again = dg.evaluate_automation_conditions(
        defs=project_defs, instance=instance, asset_selection=dg.AssetSelection.assets(key),
        evaluation_time=at + dt.timedelta(hours=5, minutes=1), cursor=after.cursor,
    )  # fmt: skip
    assert again.get_requested_partitions(key) == set()
