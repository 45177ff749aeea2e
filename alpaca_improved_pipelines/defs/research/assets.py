"""Research assets, generated from the strategy registry: a ``<family>_sweep`` for every
registered signal family, ``walk_forward`` over all of them, the leaderboard, and the options
backtest. No family is named here: registering a strategy class declares its sweep."""

from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.backtesting.families import families, family
from alpaca_improved_pipelines.defs.market_data.assets import stock_bars_1d, stock_bars_1m
from alpaca_improved_pipelines.defs.research.sweeps import SweepConfig, run_family_sweep
from alpaca_improved_pipelines.defs.resources import MLFLOW_POOL
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.tracking import TrackingResource

COMMON = {"group_name": "research", "kinds": {"mlflow", "vectorbt"}}
# The bars a family's sweep reads, by its Strategy.timeframe.
BARS = {"1d": stock_bars_1d, "1m": stock_bars_1m}


def sweep_asset(name: str) -> dg.AssetsDefinition:
    """The ``<name>_sweep`` asset of registered signal family ``name``."""
    fam = family(name)
    bars = BARS[fam.timeframe]
    # a daily family gating on intraday features reads each session's minute bars too
    deps = [bars, stock_bars_1m] if fam.uses_intraday_features else [bars]

    @dg.asset(  # type: ignore[call-overload]
        name=f"{name}_sweep",
        pool=MLFLOW_POOL,
        description=(
            f"{name} sweep ({fam.title.rstrip('.')}) over the lake's {bars.key.path[-1]}: grid "
            "or seeded random "
            "search of its declared parameter space, every point re-simulated on the compiled "
            "fast path, tracked in MLflow."
        ),
        deps=deps,
        **COMMON,
    )
    def _sweep(
        context: dg.AssetExecutionContext,
        config: SweepConfig,
        lake: LakeResource,
        tracking: TrackingResource,
    ) -> dg.MaterializeResult:
        return run_family_sweep(context, name, config, Path(lake.home), tracking.tracker())

    return _sweep


def sweep_assets() -> dict[str, dg.AssetsDefinition]:
    """One sweep asset per registered signal family, by family name."""
    return {name: sweep_asset(name) for name in families()}


class WalkForwardConfig(dg.Config):
    """Walk-forward windows in sessions."""

    train: int = 120
    test: int = 21
    anchored: bool = False


def walk_forward_asset(sweeps: Mapping[str, dg.AssetsDefinition]) -> dg.AssetsDefinition:
    """``walk_forward`` over the families of ``sweeps`` (family name -> its sweep asset)."""
    names = sorted(sweeps)

    @dg.asset(
        name="walk_forward",
        pool=MLFLOW_POOL,
        group_name="research",
        deps=[sweeps[n] for n in names],
        kinds={"mlflow"},
    )
    def _walk_forward(
        context: dg.AssetExecutionContext,
        config: WalkForwardConfig,
        lake: LakeResource,
        tracking: TrackingResource,
    ) -> dg.MaterializeResult:
        """Out-of-sample performance of choosing each family's best in-sample variant, fold by
        fold."""
        from alpaca_improved_pipelines.defs.research.leaderboard import run_walk_forward

        return run_walk_forward(
            context,
            names,
            config.train,
            config.test,
            config.anchored,
            Path(lake.home),
            tracking.tracker(),
        )

    return _walk_forward


SWEEPS: dict[str, dg.AssetsDefinition] = sweep_assets()
sweep_asset_defs: list[dg.AssetsDefinition] = list(SWEEPS.values())  # what the defs loader finds
walk_forward = walk_forward_asset(SWEEPS)

research_job = dg.define_asset_job(
    "research_job",
    # the ML family trains in its own job (ml_job): a demo-length lake is too short for it
    selection=dg.AssetSelection.groups("research") - dg.AssetSelection.assets("gbm_signal_model"),
    description="Sweeps for every family, walk-forward and the leaderboard, logged to MLflow.",
)


# gbm_signal_model (defs/ml) writes the ML family's backtest_runs / walk_forward rows too
@dg.asset(group_name="research", deps=[walk_forward, "gbm_signal_model"], kinds={"duckdb"})
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
    # a JSON list of parameter objects: sweep them (n_trials, DSR, walk-forward for the gates)
    sweep_json: str = ""
    walk_forward_train: int = 60
    walk_forward_test: int = 20


@dg.asset(
    group_name="research",
    deps=["option_chains", stock_bars_1d],
    kinds={"mlflow", "polars"},
    pool=MLFLOW_POOL,
)
def options_backtest(
    context: dg.AssetExecutionContext,
    config: OptionsBacktestRunConfig,
    lake: LakeResource,
    tracking: TrackingResource,
) -> dg.MaterializeResult:
    """An options strategy (default: the wheel) over every archived chain, Greeks P&L in MLflow."""
    import json

    from alpaca_improved_pipelines.defs.research.options_backtest import run_options_family

    if config.sweep_json:
        return _options_sweep(context, config, lake, tracking)
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


def _options_sweep(
    context: dg.AssetExecutionContext,
    config: OptionsBacktestRunConfig,
    lake: LakeResource,
    tracking: TrackingResource,
) -> dg.MaterializeResult:
    import json

    from alpaca_improved_pipelines.defs.research.options_sweep import (
        parse_points,
        run_options_sweep,
    )

    out = run_options_sweep(
        config.family,
        config.underlying,
        json.loads(config.params_json),
        parse_points(config.sweep_json),
        config.initial_cash,
        Path(lake.home),
        tracking.tracker(),
        context.run_id,
        context.asset_key.to_user_string(),
        config.walk_forward_train,
        config.walk_forward_test,
    )
    table = out["table"].with_columns(pl.col(pl.Float64).round(4)).to_pandas()
    return dg.MaterializeResult(
        metadata={
            "sessions": out["sessions"],
            "n_trials": out["n_trials"],
            "best_params": out["best_params"],
            "oos_sharpe": out["oos_sharpe"],
            "final_equity": round(out["final_equity"], 2),
            "sweep": dg.MetadataValue.md(table.to_markdown(index=False)),
            "mlflow_run_id": out["mlflow_run_id"],
            "mlflow_run": dg.MetadataValue.url(tracking.tracker().run_url(out["mlflow_run_id"])),
        }
    )
