"""Anomaly detection on bars: flags outlier returns, zero-volume runs and stale prices.

Flags only: nothing is dropped or altered; the flags go to check metadata for a human to judge.
"""

from __future__ import annotations

import polars as pl

OUTLIER_MADS = 12.0  # |return - median| beyond this many scaled MADs of the symbol's returns
ZERO_VOLUME_RUN = 5  # consecutive real (not filled) bars with zero volume
STALE_RUN = {"stock_bars_1m": 30, "stock_bars_1d": 3}  # consecutive identical closes


def _with_runs(df: pl.DataFrame, flag: str, out: str) -> pl.DataFrame:
    """Add ``out``: length of the run of consecutive True ``flag`` rows per symbol (0 if False)."""
    rid = f"_{out}_id"
    df = df.with_columns(
        (pl.col(flag) != pl.col(flag).shift(1)).over("symbol").fill_null(True).cum_sum().alias(rid)
    )
    return df.with_columns(
        pl.when(pl.col(flag)).then(pl.len().over("symbol", rid)).otherwise(0).alias(out)
    ).drop(rid)


def detect(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """One row per flagged bar: symbol, ts, kind and a human-readable detail."""
    if frame.is_empty():
        return pl.DataFrame(
            schema={"symbol": pl.String, "ts": pl.String, "kind": pl.String, "detail": pl.String}
        )
    # intraday tables: returns within a session (the overnight gap is not a minute's return)
    group = ["symbol"] if table == "stock_bars_1d" else ["symbol", "session"]
    ret = (pl.col("close") / pl.col("close").shift(1)).log().over(group)
    df = frame.sort("symbol", "ts").with_columns(ret.alias("r"))
    df = df.with_columns(
        (pl.col("r") - pl.col("r").median().over("symbol")).abs().alias("dev"),
        (
            (pl.col("r") - pl.col("r").median().over("symbol")).abs().median().over("symbol")
            * 1.4826
        ).alias("mad"),
    )
    zero = (pl.col("volume") == 0) & ~pl.col("filled")
    stale = (pl.col("close") == pl.col("close").shift(1).over("symbol")).fill_null(False)
    df = df.with_columns(zero.alias("_zero"), stale.alias("_stale"))
    df = _with_runs(_with_runs(df, "_zero", "zero_run"), "_stale", "stale_run")
    outliers = df.filter(pl.col("mad") > 0, pl.col("dev") > OUTLIER_MADS * pl.col("mad")).select(
        "symbol",
        "ts",
        pl.lit("outlier_return").alias("kind"),
        pl.format(
            "log return {} ({} MADs)",
            pl.col("r").round(4),
            (pl.col("dev") / pl.col("mad")).round(1),
        ).alias("detail"),
    )
    zeros = df.filter(pl.col("zero_run") >= ZERO_VOLUME_RUN).select(
        "symbol",
        "ts",
        pl.lit("zero_volume_run").alias("kind"),
        pl.format("{} bars with zero volume", pl.col("zero_run")).alias("detail"),
    )
    stales = df.filter(pl.col("stale_run") >= STALE_RUN.get(table, 30)).select(
        "symbol",
        "ts",
        pl.lit("stale_price").alias("kind"),
        pl.format("close unchanged for {} bars", pl.col("stale_run") + 1).alias("detail"),
    )
    return pl.concat([outliers, zeros, stales]).with_columns(pl.col("ts").cast(pl.String))
