"""Monitoring: live results back into the lake, and live-vs-research drift."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.backtesting.reference import deployment_reference, tracking_error
from alpaca_improved_pipelines.defs.monitoring.journal_io import (
    daily_pnl,
    fills_with_session,
    live_returns,
    option_marks,
    read_table,
)
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.resources.lake import LakeResource
from contracts import paths


def _write_by_session(lake: LakeResource, table: str, frame: pl.DataFrame) -> int:
    if frame.is_empty():
        return 0
    for (session,), part in frame.partition_by("session", as_dict=True).items():
        lake.write(table, session, part)
    return frame["session"].n_unique()


@dg.asset(group_name="monitoring", kinds={"sqlite", "parquet"})
def live_results(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Orders, fills, positions and daily P&L from the live journal, plus a drift report."""
    home = Path(lake.home)
    orders = read_table(home, "orders")
    orders = orders.with_columns(pl.col("session").cast(pl.String).str.to_date())
    fills = fills_with_session(read_table(home, "fills"))
    positions = read_table(home, "positions")
    sessions = sorted(set(fills["session"].to_list()) | set(orders["session"].to_list()))
    # closes from a week before the first live session on (earlier marks carry forward)
    since = (min(sessions) - dt.timedelta(days=7)).isoformat() if sessions else "9999"
    root = paths.lake_dir(home)
    recent = [d for d in storage.existing_sessions(root, "stock_bars_1d") if d >= since]
    closes = storage.read_partitions(root, "stock_bars_1d", recent, BAR_SCHEMA).select(
        "symbol", "session", "close"
    )
    pnl = daily_pnl(fills, pl.concat([closes, option_marks(home, since)]))
    n = {
        "live_orders": _write_by_session(lake, "live_orders", orders),
        "live_fills": _write_by_session(
            lake, "live_fills", fills.drop("ts").with_columns(fills["ts"].cast(pl.String))
        ),
        "live_pnl": _write_by_session(lake, "live_pnl", pnl),
    }
    if positions.height and sessions:
        lake.write(
            "live_positions",
            max(sessions),
            positions.with_columns(pl.lit(max(sessions)).alias("session")),
        )
    drift = (
        drift_report(orders, fills, closes).join(
            tracking(home, orders, pnl, read_table(home, "deployments")),
            on="deployment_id",
            how="left",
        )
        if orders.height
        else pl.DataFrame()
    )
    return dg.MaterializeResult(
        metadata={
            "orders": orders.height,
            "fills": fills.height,
            "positions": positions.height,
            "sessions_written": dg.MetadataValue.json(n),
            "drift": dg.MetadataValue.md(
                drift.to_pandas().to_markdown(index=False) if drift.height else "no fills yet"
            ),
            "drift_rows": dg.MetadataValue.json(drift.to_dicts()),
        }
    )


def tracking(
    home: Path, orders: pl.DataFrame, pnl: pl.DataFrame, deployments: pl.DataFrame
) -> pl.DataFrame:
    """Per deployment: tracking error of its live daily returns against its backtest.

    The backtest is :func:`deployment_reference` (vectorbt for signal strategies, the options
    engine over the archived chains for options strategies): the manifest's strategy, params
    and capital, starting flat on the deployment's first decision session and running to its
    last P&L session; live returns are daily P&L (options marked at the chain mids) over the
    deployment's running equity, 0 on sessions without P&L. A family with no backtest gets
    nulls and a note.
    """
    rows = []
    for dep_id, manifest_json in deployments.select("id", "manifest_json").iter_rows():
        dep_pnl = pnl.filter(pl.col("deployment_id") == dep_id)
        dep_orders = orders.filter(pl.col("deployment_id") == dep_id)
        if dep_pnl.is_empty() or dep_orders.is_empty():
            continue
        manifest = json.loads(manifest_json)
        start, end = dep_orders["session"].min(), dep_pnl["session"].max()
        row: dict = {"deployment_id": dep_id, "tracking_note": ""}
        try:
            ref = deployment_reference(home, manifest, start, end)  # type: ignore[arg-type]
        except ValueError as exc:  # ConfigError included: no lake data, unknown family
            rows.append({**row, "tracking_note": f"no backtest: {exc}"})
            continue
        live = ref.returns.select("session").join(
            live_returns(dep_pnl, float(manifest.get("capital", 100_000.0))),
            on="session",
            how="left",
        )
        te = tracking_error(live.fill_null(0.0), ref.returns)
        rows.append({**row, **{f"te_{k}" if k == "sessions" else k: v for k, v in te.items()}})
    schema = {"deployment_id": pl.String, "tracking_note": pl.String, "te_sessions": pl.Int64,
              "tracking_error": pl.Float64, "live_return": pl.Float64,
              "backtest_return": pl.Float64, "correlation": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def drift_report(orders: pl.DataFrame, fills: pl.DataFrame, closes: pl.DataFrame) -> pl.DataFrame:
    """Per deployment: fill rate, and slippage of fills against the close of the session the
    order was decided on (bps, positive = worse than the close).

    The backtests fill at the decision session's close, so this slippage is the live-vs-backtest
    execution drift (the runner decides after the close and trades at the next open).
    """
    if orders.is_empty():
        return pl.DataFrame()
    rate = orders.group_by("deployment_id").agg(
        pl.len().alias("orders"), (pl.col("status") == "filled").sum().alias("filled")
    )
    decided = orders.select("client_order_id", pl.col("session").alias("decided"))
    slip = (
        fills.join(decided, on="client_order_id", how="inner")  # trades, not option activities
        .join(closes, left_on=["symbol", "decided"], right_on=["symbol", "session"], how="inner")
        .with_columns(
            (
                pl.when(pl.col("qty") > 0).then(1.0).otherwise(-1.0)
                * (pl.col("price") / pl.col("close") - 1.0)
                * 1e4
            ).alias("bps")
        )
        .group_by("deployment_id")
        .agg(
            pl.col("bps").mean().alias("slippage_bps_mean"),
            pl.col("bps").abs().max().alias("slippage_bps_max"),
        )
    )
    return rate.join(slip, on="deployment_id", how="left").with_columns(
        (pl.col("filled") / pl.col("orders")).alias("fill_rate")
    )
