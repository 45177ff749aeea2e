"""Coarser bars from minute bars, per symbol and session (bars never span two sessions)."""

from __future__ import annotations

import polars as pl


def resample_minutes(minute: pl.DataFrame, every: str) -> pl.DataFrame:
    """Aggregate 1-minute bars into ``every`` ("5m", "1h") bars stamped at the bucket start.

    Hourly buckets are offset by 30 minutes so they start at the 09:30 New York open.
    """
    if minute.is_empty():
        return minute
    return (
        minute.sort("symbol", "ts")
        .group_by_dynamic(
            "ts",
            every=every,
            group_by=["symbol", "session"],
            closed="left",
            label="left",
            start_by="window",
            offset="30m" if every == "1h" else "0m",
        )
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.when(pl.col("volume").sum() > 0)
            .then((pl.col("vwap") * pl.col("volume")).sum() / pl.col("volume").sum())
            .otherwise(pl.col("close").last())
            .round(4)
            .alias("vwap"),
            pl.col("trade_count").sum(),
            pl.col("source").first(),
            pl.col("adjustment").first(),
            pl.col("filled").all(),
        )
        .select(minute.columns)
        .sort("symbol", "ts")
    )
