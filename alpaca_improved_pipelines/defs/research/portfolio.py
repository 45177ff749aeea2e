"""The ``portfolio_allocation`` asset: capital across the candidates and deployments with
skfolio (risk parity, minimum variance, hierarchical risk parity), backtested out of sample."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from alpaca_improved_pipelines.defs.resources import MLFLOW_POOL
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.tracking import TrackingResource


class PortfolioConfig(dg.Config):
    """Methods, walk-forward windows (sessions) and constraints of the allocation."""

    methods: list[str] = Field(
        default_factory=lambda: ["risk_parity", "min_variance", "hrp"],
        description="risk_parity, min_variance, hrp, equal_weight",
    )
    train: int = Field(120, gt=1, description="sessions each fold's weights are fitted on")
    test: int = Field(21, gt=0, description="sessions each fold holds its weights")
    anchored: bool = False
    min_weight: float = Field(0.0, ge=0, le=1)
    max_weight: float = Field(1.0, ge=0, le=1)
    buckets: dict[str, str] = Field(
        default_factory=dict, description="strategy -> bucket (underlying, sector, factor)"
    )
    bucket_caps: dict[str, float] = Field(
        default_factory=dict, description="bucket -> highest summed weight"
    )
    include_deployments: bool = Field(True, description="add live deployments from live_pnl")


@dg.asset(
    group_name="research",
    deps=["leaderboard", "options_backtest", "live_results"],
    kinds={"mlflow", "skfolio"},
    pool=MLFLOW_POOL,
)
def portfolio_allocation(
    context: dg.AssetExecutionContext,
    config: PortfolioConfig,
    lake: LakeResource,
    tracking: TrackingResource,
) -> dg.MaterializeResult:
    """Correlations, risk-parity / min-variance / HRP weights and their walk-forward vs 1/n."""
    from alpaca_improved_pipelines.defs.research.portfolio_returns import (
        candidate_versions,
        strategy_returns,
    )
    from alpaca_improved_pipelines.defs.research.portfolio_run import log_portfolio, run_portfolio
    from alpaca_improved_pipelines.plots import line_plot_markdown
    from alpaca_improved_pipelines.tracking.mlflow_store import RunTags
    from research.portfolio import Constraints

    home, tracker = Path(lake.home), tracking.tracker()
    returns, left_out = strategy_returns(
        home, tracker, config.include_deployments, config.train + config.test
    )
    constraints = Constraints(
        config.min_weight, config.max_weight, dict(config.buckets), dict(config.bucket_caps)
    )
    try:
        result = run_portfolio(
            returns, config.methods, constraints, config.train, config.test, config.anchored
        )
    except ValueError as exc:  # bad methods or constraints: say which config to change
        raise ConfigError(f"portfolio_allocation config: {exc}") from exc
    span = f"{returns.index[0]}..{returns.index[-1]}"
    tags = RunTags(context.run.run_id, context.asset_key.to_user_string(), span,
                   candidate_versions(home))  # fmt: skip
    params = config.model_dump(mode="json") | {"strategies": ",".join(returns.columns),
                                               "sessions": len(returns)}  # fmt: skip
    run_id = log_portfolio(tracker, result, params, tags)
    md = {
        "correlation": result.correlation.table().to_pandas().to_markdown(index=False),
        "weights": result.weights().to_pandas().to_markdown(index=False),
    }
    if result.backtests:
        md["out_of_sample"] = result.comparison().to_pandas().to_markdown(index=False)
        best = max(result.backtests, key=lambda m: result.backtests[m].metrics()["sharpe_ratio"])
        md["equity"] = line_plot_markdown(result.equity(), "session", best, f"{best} equity")
    violated = [f"{m}: {c.constraint}" for m, a in result.allocations.items()
                for c in a.report if not c.satisfied]  # fmt: skip
    return dg.MaterializeResult(
        metadata={
            **{k: dg.MetadataValue.md(v) for k, v in md.items()},
            "strategies": len(returns.columns),
            "sessions": len(returns),
            "shrinkage": round(result.correlation.shrinkage, 4),
            "clusters": dg.MetadataValue.json(result.clusters()),
            "constraints_not_met": dg.MetadataValue.json(violated),
            "note": result.note,
            "left_out": dg.MetadataValue.json(left_out),
            "mlflow_run_id": run_id,
            "mlflow_run": dg.MetadataValue.url(tracker.run_url(run_id)),
        }
    )
