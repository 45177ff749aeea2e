"""Monitoring: live results back into the lake, and live-vs-research drift."""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.defs.monitoring.journal_io import (
    daily_pnl,
    fills_with_session,
    read_table,
)
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.resources.lake import LakeResource


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
    recent = [d for d in storage.existing_sessions(home / "lake", "stock_bars_1d") if d >= since]
    closes = storage.read_partitions(home / "lake", "stock_bars_1d", recent, BAR_SCHEMA).select(
        "symbol", "session", "close"
    )
    pnl = daily_pnl(fills, closes)
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
    drift = drift_report(orders, fills, closes)
    return dg.MaterializeResult(
        metadata={
            "orders": orders.height,
            "fills": fills.height,
            "positions": positions.height,
            "sessions_written": dg.MetadataValue.json(n),
            "drift": dg.MetadataValue.md(
                drift.to_pandas().to_markdown(index=False) if drift.height else "no fills yet"
            ),
        }
    )


def drift_report(orders: pl.DataFrame, fills: pl.DataFrame, closes: pl.DataFrame) -> pl.DataFrame:
    """Per deployment: fill rate, and slippage of fills against the session close (bps).

    The backtests fill at the close, so this slippage is the live-vs-backtest execution drift.
    """
    if orders.is_empty():
        return pl.DataFrame()
    rate = orders.group_by("deployment_id").agg(
        pl.len().alias("orders"), (pl.col("status") == "filled").sum().alias("filled")
    )
    slip = (
        fills.join(closes, on=["symbol", "session"], how="inner")
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
