"""The run behind ``portfolio_allocation``: correlate the strategies, allocate with each method,
walk each allocation forward against equal weight, and log it all to one MLflow run.

The weights to use next are each method fitted on the whole common history; the walk-forward
(fit on ``train`` sessions, hold through the next ``test``) says how such weights did out of
sample. With fewer common sessions than ``train + test`` the weights are still computed and the
backtest is skipped with a note, so the research job does not fail on a short lake.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from alpaca_improved_pipelines.backtesting import plots
from alpaca_improved_pipelines.defs.research.portfolio_returns import LIVE_PREFIX
from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker
from research.portfolio import (
    Allocation,
    AllocationBacktest,
    Constraints,
    CorrelationReport,
    allocate,
    correlation_report,
    parse_method,
    walk_forward_allocation,
)

EXPERIMENT = "portfolio"


@dataclass
class PortfolioResult:
    """What the asset reports: correlations, weights now, walk-forwards, the MLflow run."""

    returns: pd.DataFrame
    correlation: CorrelationReport
    allocations: dict[str, Allocation]
    backtests: dict[str, AllocationBacktest] = field(default_factory=dict)
    note: str = ""
    mlflow_run_id: str = ""

    def clusters(self) -> dict[str, dict[str, str]]:
        """Cluster names per strategy, and per deployment id as ``AccountLimits`` takes them
        (``correlation_clusters``, for the risk engine's ``max_cluster_share``)."""
        corr = self.correlation
        names = {a: f"cluster-{c}" for a, c in zip(corr.assets, corr.clusters, strict=True)}
        deployments = {
            a.removeprefix(LIVE_PREFIX): c for a, c in names.items() if a.startswith(LIVE_PREFIX)
        }
        return {"strategy_clusters": names, "correlation_clusters": deployments}

    def weights(self) -> pl.DataFrame:
        """``strategy`` plus one weight column per method."""
        data: dict[str, Any] = {"strategy": list(self.returns.columns)}
        for method, alloc in self.allocations.items():
            data[method] = [round(alloc.weights[s], 6) for s in data["strategy"]]
        return pl.DataFrame(data)

    def comparison(self) -> pl.DataFrame:
        """Per method: out-of-sample Sharpe and max drawdown beside equal weight's."""
        rows = []
        for method, bt in self.backtests.items():
            m = bt.metrics()
            rows.append({"method": method, **{k: round(v, 4) for k, v in m.items()}})
        return pl.DataFrame(rows)

    def equity(self) -> pl.DataFrame:
        """``session``, one equity column per method and ``equal_weight`` (start 1.0)."""
        frames = [bt.equity().rename({"equity": m}) for m, bt in self.backtests.items()]
        if not frames:
            return pl.DataFrame()
        out = frames[0]
        for f in frames[1:]:
            out = out.join(f.drop("equal_weight_equity"), on="session")
        cols = ["session", *self.backtests, "equal_weight_equity"]
        return out.select(cols).rename({"equal_weight_equity": "equal_weight"})


def run_portfolio(
    returns: pd.DataFrame,
    methods: list[str],
    constraints: Constraints,
    train: int,
    test: int,
    anchored: bool,
) -> PortfolioResult:
    """Correlations, weights on the whole history, and a walk-forward per method."""
    corr = correlation_report(returns)
    allocations = {parse_method(m).value: allocate(returns, m, constraints) for m in methods}
    result = PortfolioResult(returns, corr, allocations)
    if len(returns) < train + test:
        result.note = (
            f"backtest skipped: {len(returns)} common sessions < train {train} + test {test}"
        )
        return result
    for m in allocations:
        result.backtests[m] = walk_forward_allocation(
            returns, m, constraints, train, test, anchored
        )
    return result


def log_portfolio(
    tracker: Tracker, result: PortfolioResult, params: dict[str, Any], tags: RunTags
) -> str:
    """One MLflow run (experiment ``portfolio``): params incl. every weight, out-of-sample
    metrics per method, the tables as Parquet, the heatmap and equity curves as PNG/HTML."""
    run_id = tracker.start_run(EXPERIMENT, f"portfolio {tags.partition_range}", "portfolio", tags)
    weights = {
        f"weight.{m}.{s}": round(w, 6)
        for m, a in result.allocations.items()
        for s, w in a.weights.items()
    }
    metrics = {f"{m}.{k}": v for m, bt in result.backtests.items() for k, v in bt.metrics().items()}
    metrics["shrinkage"] = result.correlation.shrinkage
    tracker.log(run_id, params={**params, **weights}, metrics=metrics)
    tracker.log_frame(run_id, result.correlation.table("pearson"), "correlation.parquet")
    tracker.log_frame(run_id, result.correlation.table("shrunk"), "correlation_shrunk.parquet")
    tracker.log_frame(run_id, result.weights(), "weights.parquet")
    tracker.log_text(run_id, json.dumps(result.clusters(), indent=2), "correlation_clusters.json")
    reports = [a.report_table().with_columns(pl.lit(m).alias("method"))
               for m, a in result.allocations.items()]  # fmt: skip
    tracker.log_frame(run_id, pl.concat(reports), "constraints.parquet")
    if result.backtests:
        tracker.log_frame(run_id, result.equity(), "equity.parquet")
        folds = [bt.weights().with_columns(pl.lit(m).alias("method"))
                 for m, bt in result.backtests.items()]  # fmt: skip
        tracker.log_frame(run_id, pl.concat(folds), "fold_weights.parquet")
    with tempfile.TemporaryDirectory() as tmp:
        corr = result.correlation
        names = [corr.assets[i] for i in corr.order]
        z = corr.pearson[list(corr.order)][:, list(corr.order)]
        for path in plots.heatmap(z, names, names, "", "", "correlation (clustered)",
                                  Path(tmp) / "correlation"):  # fmt: skip
            tracker.log_file(run_id, path, "plots")
        for m, bt in result.backtests.items():
            for path in plots.equity_and_drawdown(
                list(bt.sessions), bt.returns, f"{m} out of sample", Path(tmp) / f"equity_{m}"
            ):
                tracker.log_file(run_id, path, "plots")  # fmt: skip
    tracker.finish(run_id)
    return run_id
