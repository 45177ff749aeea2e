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
    """Best variant per family by Deflated Sharpe (trial ledger), with out-of-sample Sharpe."""
    from alpaca_improved_pipelines.defs.research.leaderboard import build_leaderboard

    return build_leaderboard(Path(lake.home))


class OptionsBacktestRunConfig(dg.Config):
    """Which options strategy to backtest over the chain archive."""

    family: str = "wheel"
    underlying: str = "SPY"
    params_json: str = "{}"
    initial_cash: float = 100_000.0


@dg.asset(group_name="research", deps=["option_chains", stock_bars_1d], kinds={"mlflow", "polars"})
def options_backtest(
    context: dg.AssetExecutionContext,
    config: OptionsBacktestRunConfig,
    lake: LakeResource,
    tracking: TrackingResource,
) -> dg.MaterializeResult:
    """An options strategy (default: the wheel) over every archived chain, Greeks P&L in MLflow."""
    import json

    from alpaca_improved_pipelines.defs.research.options_backtest import run_options_family

    out = run_options_family(
        config.family,
        config.underlying,
        json.loads(config.params_json),
        config.initial_cash,
        Path(lake.home),
        tracking.tracker(),
        context.run_id,
        context.asset_key.to_user_string(),
    )
    return dg.MaterializeResult(
        metadata={
            "sessions": out["sessions"],
            "final_equity": round(out["final_equity"], 2),
            "sharpe_ratio": out.get("sharpe_ratio", float("nan")),
            "fills_by_kind": dg.MetadataValue.json(out["fills"]),
            "mlflow_run_id": out["mlflow_run_id"],
            "mlflow_run": dg.MetadataValue.url(tracking.tracker().run_url(out["mlflow_run_id"])),
        }
    )
