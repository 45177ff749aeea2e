"""Stress tests and factor attribution as assets, with heatmaps in the UI and in MLflow."""

import json
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from alpaca_improved_pipelines.defs.resources import MLFLOW_POOL
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.tracking import TrackingResource


def _steps(low: float, high: float, n: int) -> list[float]:
    return [round(low + (high - low) * i / (n - 1), 6) for i in range(n)]


class StressConfig(dg.Config):
    """The scenario grid and the historical windows."""

    spot_shocks: list[float] = Field(default_factory=lambda: _steps(-0.2, 0.2, 21))
    vol_points: list[float] = Field(default_factory=lambda: _steps(-10.0, 10.0, 11))
    skew_tilt: float = Field(0.0, description="vol points per 1.00 of ln(K/S)")
    days: float = Field(0.0, description="calendar days forward (time decay)")
    window_sessions: int = Field(10, description="length of the found crash / vol-spike windows")
    proxy: str = Field("SPY", description="path for underlyings a window lacks; finds windows")
    windows_json: str = Field(
        "[]", description='extra windows: [{"name": "...", "start": "YYYY-MM-DD", "end": ...}]'
    )


@dg.asset(
    group_name="risk",
    deps=["option_chains", "vol_surface", "stock_bars_1d"],
    kinds={"numba", "mlflow", "parquet"},
    pool=MLFLOW_POOL,
)
def stress_scenarios(
    context: dg.AssetExecutionContext,
    config: StressConfig,
    lake: LakeResource,
    tracking: TrackingResource,
) -> dg.MaterializeResult:
    """Spot x vol P&L grid and historical stress windows of the live (or backtest) books."""
    from alpaca_improved_pipelines.defs.risk.stress import run_stress

    tracker = tracking.tracker()
    key = context.asset_key.to_user_string()
    grid, hist, summary, market = run_stress(
        Path(lake.home), tracker, config, context.run.run_id, key
    )
    lake.write("stress_scenarios", market.session, grid)
    if hist.height:
        lake.write("stress_history", market.session, hist)
    run_id = summary["mlflow_run_id"]
    return dg.MaterializeResult(
        metadata={
            "session": market.session.isoformat(),
            "books": dg.MetadataValue.md(pl.DataFrame(summary["books"]).to_pandas().to_markdown()),
            "windows": dg.MetadataValue.json(summary["windows"]),
            "heatmaps": dg.MetadataValue.md("\n\n".join(summary["markdown"])),
            "grid_rows": grid.height,
            "mlflow_run_id": run_id,
            "mlflow_run": dg.MetadataValue.url(tracker.run_url(run_id)),
        }
    )


class AttributionConfig(dg.Config):
    """The benchmark the market beta is measured against."""

    benchmark: str = "SPY"


@dg.asset(
    group_name="risk", deps=["options_backtest"], kinds={"mlflow", "parquet"}, pool=MLFLOW_POOL
)
def factor_attribution(
    context: dg.AssetExecutionContext,
    config: AttributionConfig,
    lake: LakeResource,
    tracking: TrackingResource,
) -> dg.MaterializeResult:
    """Market beta (alpha, R2, t-stats) beside the delta/gamma/theta/vega split per family."""
    from alpaca_improved_pipelines.defs.risk import plots
    from alpaca_improved_pipelines.defs.risk.attribution import run_attribution

    table = run_attribution(Path(lake.home), tracking.tracker(), config.benchmark)
    wide = table.pivot("component", index="family", values="value", aggregate_function="first")
    charts = []
    greeks = table.filter(pl.col("kind") == "greeks")
    for (family,), part in greeks.partition_by("family", as_dict=True).items():
        split = dict(zip(part["component"].to_list(), part["value"].to_list(), strict=True))
        fig = plots.attribution_bars(split, f"{family}: P&L attribution")
        charts.append(plots.markdown(fig, f"{family} attribution"))
    return dg.MaterializeResult(
        metadata={
            "families": wide.height,
            "attribution": dg.MetadataValue.md(wide.to_pandas().to_markdown(index=False)),
            "greek_split": dg.MetadataValue.md("\n\n".join(charts)),
            "by_family": dg.MetadataValue.json(json.loads(wide.write_json())),
        }
    )
