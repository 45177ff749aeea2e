"""Pure comparison of two sources' bars for one session: agreement statistics and a report."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

STATS_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "timeframe": pl.String(),
    "bars_primary": pl.Int64(),
    "bars_secondary": pl.Int64(),
    "missing_in_primary": pl.Int64(),
    "missing_in_secondary": pl.Int64(),
    "max_close_diff_bps": pl.Float64(),
    "mean_close_diff_bps": pl.Float64(),
    "volume_diff_pct": pl.Float64(),
}


@dataclass(frozen=True)
class Tolerance:
    """Largest disagreement still accepted between two sources."""

    max_close_diff_bps: float = 5.0
    max_volume_diff_pct: float = 5.0
    max_missing_bars: int = 5


def compare_bars(primary: pl.DataFrame, secondary: pl.DataFrame, timeframe: str) -> pl.DataFrame:
    """Per symbol: bar counts, bars missing on each side, close difference (bps) on the overlap,
    and total-volume difference (% of the larger) on the overlap."""
    a = primary.select("symbol", "ts", pl.col("close").alias("c1"), pl.col("volume").alias("v1"))
    b = secondary.select("symbol", "ts", pl.col("close").alias("c2"), pl.col("volume").alias("v2"))
    both = a.join(b, on=["symbol", "ts"], how="full", coalesce=True)
    overlap = pl.col("c1").is_not_null() & pl.col("c2").is_not_null()
    bps = ((pl.col("c1") - pl.col("c2")).abs() / pl.col("c2") * 1e4).filter(overlap)
    v1, v2 = pl.col("v1").filter(overlap).sum(), pl.col("v2").filter(overlap).sum()
    stats = both.group_by("symbol").agg(
        pl.col("c1").is_not_null().sum().cast(pl.Int64).alias("bars_primary"),
        pl.col("c2").is_not_null().sum().cast(pl.Int64).alias("bars_secondary"),
        pl.col("c1").is_null().sum().cast(pl.Int64).alias("missing_in_primary"),
        pl.col("c2").is_null().sum().cast(pl.Int64).alias("missing_in_secondary"),
        bps.max().fill_null(0.0).alias("max_close_diff_bps"),
        bps.mean().fill_null(0.0).alias("mean_close_diff_bps"),
        ((v1 - v2).abs() / pl.max_horizontal(v1, v2, pl.lit(1.0)) * 100).alias("volume_diff_pct"),
    )
    return (
        stats.with_columns(pl.lit(timeframe).alias("timeframe"))
        .select(list(STATS_SCHEMA))
        .cast(pl.Schema(STATS_SCHEMA))
        .sort("symbol")
    )


def violations(stats: pl.DataFrame, tol: Tolerance) -> pl.DataFrame:
    """The rows of ``stats`` outside ``tol``."""
    missing = pl.col("missing_in_primary") + pl.col("missing_in_secondary")
    return stats.filter(
        (pl.col("max_close_diff_bps") > tol.max_close_diff_bps)
        | (pl.col("volume_diff_pct") > tol.max_volume_diff_pct)
        | (missing > tol.max_missing_bars)
    )


def report_markdown(stats: pl.DataFrame, tol: Tolerance, primary: str, secondary: str) -> str:
    """A Markdown report: thresholds, then one row per (session, timeframe, symbol)."""
    bad = violations(stats, tol)
    head = (
        f"**{primary}** vs **{secondary}**: {stats.height} comparisons, "
        f"{bad.height} outside tolerance (close ≤ {tol.max_close_diff_bps} bps, volume ≤ "
        f"{tol.max_volume_diff_pct}%, missing bars ≤ {tol.max_missing_bars}).\n\n"
    )
    cols = [c for c in ("session", *STATS_SCHEMA) if c in stats.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in stats.select(cols).head(60).iter_rows():
        lines.append(
            "| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row) + " |"
        )
    return head + "\n".join(lines)
