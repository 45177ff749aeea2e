"""Research assets: parameter sweeps per strategy family, walk-forward, leaderboard."""

from pathlib import Path

import dagster as dg

from alpaca_improved_pipelines.defs.market_data.assets import stock_bars_1d
from alpaca_improved_pipelines.defs.research.sweeps import SweepConfig, run_family_sweep
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.tracking import TrackingResource

COMMON = {"group_name": "research", "deps": [stock_bars_1d], "kinds": {"mlflow", "vectorbt"}}


@dg.asset(**COMMON)  # type: ignore[call-overload]
def ma_crossover_sweep(
    context: dg.AssetExecutionContext,
    config: SweepConfig,
    lake: LakeResource,
    tracking: TrackingResource,
) -> dg.MaterializeResult:
    """Moving-average crossover sweep over the daily lake, tracked in MLflow."""
    return run_family_sweep(context, "ma_crossover", config, Path(lake.home), tracking.tracker())


@dg.asset(**COMMON)  # type: ignore[call-overload]
def rsi_reversion_sweep(
    context: dg.AssetExecutionContext,
    config: SweepConfig,
    lake: LakeResource,
    tracking: TrackingResource,
) -> dg.MaterializeResult:
    """RSI mean-reversion sweep over the daily lake, tracked in MLflow."""
    return run_family_sweep(context, "rsi_reversion", config, Path(lake.home), tracking.tracker())


research_job = dg.define_asset_job(
    "research_job",
    selection=dg.AssetSelection.groups("research"),
    description="Sweeps for every family, walk-forward and the leaderboard, logged to MLflow.",
)


class WalkForwardConfig(dg.Config):
    """Walk-forward windows in sessions."""

    train: int = 120
    test: int = 21
    anchored: bool = False


@dg.asset(group_name="research", deps=[ma_crossover_sweep, rsi_reversion_sweep], kinds={"mlflow"})
def walk_forward(
    context: dg.AssetExecutionContext,
    config: WalkForwardConfig,
    lake: LakeResource,
    tracking: TrackingResource,
) -> dg.MaterializeResult:
    """Out-of-sample performance of choosing each family's best in-sample variant, fold by fold."""
    from alpaca_improved_pipelines.defs.research.leaderboard import run_walk_forward

    return run_walk_forward(
        context, config.train, config.test, config.anchored, Path(lake.home), tracking.tracker()
    )


@dg.asset(group_name="research", deps=[walk_forward], kinds={"duckdb"})
def leaderboard(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Best variants across families with Deflated Sharpe (trial ledger) and out-of-sample Sharpe."""
    from alpaca_improved_pipelines.defs.research.leaderboard import build_leaderboard

    return build_leaderboard(Path(lake.home))
