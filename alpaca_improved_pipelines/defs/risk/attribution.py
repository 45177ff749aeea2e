"""The run behind the ``factor_attribution`` asset: market beta plus the Greek split per family.

For each family's latest backtest in ``backtest_runs`` whose MLflow run logged its daily equity
(``daily.parquet``; the options backtests do), the daily returns are regressed on the benchmark's
close-to-close returns from ``stock_bars_1d`` (:func:`strategies.analytics.factor.market_beta`)
and put beside the run's delta / gamma / theta / vega attribution (``attribution.parquet``).
One row per (family, component) goes to the ``factor_attribution`` lake table and the tables to
the family's MLflow run as ``factor_attribution.parquet``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from alpaca_improved_pipelines.backtesting.research_tables import write_family
from alpaca_improved_pipelines.defs.risk import plots as risk_plots
from alpaca_improved_pipelines.defs.risk.books import latest_backtests
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.tracking.mlflow_store import Tracker
from contracts import paths
from strategies.analytics.factor import factor_attribution


def benchmark_returns(lake: Path, symbol: str, sessions: list[Any]) -> pl.DataFrame:
    """``session, benchmark`` close-to-close returns of ``symbol`` on ``sessions``."""
    keys = sorted({str(s) for s in sessions})
    bars = storage.read_partitions(lake, "stock_bars_1d", keys, BAR_SCHEMA)
    bars = bars.filter(pl.col("symbol") == symbol).sort("session")
    if bars.is_empty():
        raise ConfigError(
            f"benchmark {symbol!r} has no stock_bars_1d rows over the backtest; choose a "
            "benchmark symbol the lake holds"
        )
    return bars.select(
        pl.col("session").cast(pl.Date), (pl.col("close") / pl.col("close").shift(1) - 1.0).alias(
            "benchmark"
        )
    )  # fmt: skip


def attribute_family(
    lake: Path, tracker: Tracker, family: str, run_id: str, benchmark: str, tmp: str
) -> pl.DataFrame | None:
    """The attribution rows of one family's run (None when the run logged no daily equity)."""
    names = {a.path for a in tracker.client.list_artifacts(run_id)}
    if "daily.parquet" not in names:
        return None
    daily = pl.read_parquet(tracker.client.download_artifacts(run_id, "daily.parquet", tmp))
    daily = daily.select(pl.col("session").cast(pl.Date), "equity").sort("session")
    daily = daily.with_columns((pl.col("equity") / pl.col("equity").shift(1) - 1.0).alias("r"))
    joined = daily.join(
        benchmark_returns(lake, benchmark, daily["session"].to_list()), on="session", how="left"
    ).slice(1)
    greeks = None
    if "attribution.parquet" in names:
        local = tracker.client.download_artifacts(run_id, "attribution.parquet", tmp)
        greeks = pl.read_parquet(local)
    out = factor_attribution(joined["r"].to_numpy(), joined["benchmark"].to_numpy(), greeks)
    table = out.table().with_columns(
        pl.lit(family).alias("family"), pl.lit(benchmark).alias("benchmark"),
        pl.lit(run_id).alias("mlflow_run_id"),
    )  # fmt: skip
    tracker.log_frame(run_id, table, "factor_attribution.parquet")
    if out.greeks:
        fig = risk_plots.attribution_bars(out.greeks, f"{family}: P&L attribution")
        tracker.log_file(run_id, risk_plots.save_png(fig, Path(tmp) / "attribution.png"), "plots")
    if out.market is not None:
        fit = out.market
        tracker.log(run_id, metrics={"beta": fit.beta, "beta_t": fit.beta_t,
                    "alpha_annual": fit.alpha_annual, "r_squared": fit.r_squared})  # fmt: skip
    return table


def run_attribution(home: Path, tracker: Tracker, benchmark: str) -> pl.DataFrame:
    """Attribute every family's latest backtest; write ``factor_attribution`` per family.

    Raises:
        ConfigError: when no backtest logged daily equity (names the asset to materialize).
    """
    lake = paths.lake_dir(home)
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        for family, run_id in latest_backtests(home):
            table = attribute_family(lake, tracker, family, run_id, benchmark, tmp)
            if table is not None:
                write_family(lake, "factor_attribution", family, table)
                tables.append(table)
    if not tables:
        raise ConfigError(
            "no backtest with daily equity to attribute; materialize options_backtest first"
        )
    return pl.concat(tables)
