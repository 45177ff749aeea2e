"""An options family swept over the chain archive: every point on the options engine, the
leaderboard rows with the trial count and Deflated Sharpe, and the walk-forward row the gates
read, so an options family reaches candidates the way a signal family does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from alpaca_improved_pipelines.backtesting import research_tables
from alpaca_improved_pipelines.defs.research.options_backtest import (
    _log_artifacts,
    load_chain_archive,
    load_vol_features,
)
from alpaca_improved_pipelines.defs.research.walk_forward import walk_forward
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.tracking import repro
from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker
from contracts import paths
from contracts.greeks import LAKE_THETA_UNIT, LAKE_VEGA_UNIT
from contracts.manifest import OptionsCosts
from strategies import analytics
from strategies.backtest import run_options_backtest
from strategies.backtest.options_sweep import sweep_options
from strategies.base import create_strategy


def parse_points(sweep_json: str) -> list[dict[str, Any]]:
    """The sweep's points from JSON (a non-empty list of parameter objects; ConfigError)."""
    try:
        points = json.loads(sweep_json)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"sweep_json is not JSON ({exc}); give a list of objects") from None
    if not isinstance(points, list) or not points or not all(isinstance(p, dict) for p in points):
        raise ConfigError(
            "sweep_json must be a non-empty JSON list of parameter objects, e.g. "
            '[{"min_iv_rank": null}, {"min_iv_rank": 0.5}]'
        )
    return points


def run_options_sweep(
    family: str,
    underlying: str,
    params: dict[str, Any],
    points: list[dict[str, Any]],
    initial_cash: float,
    home: Path,
    tracker: Tracker,
    run_id: str,
    asset_key: str,
    train: int,
    test: int,
) -> dict[str, Any]:
    """Sweep ``family`` at ``points`` (over ``params``); write backtest_runs (ranked by Sharpe)
    and walk_forward for the family, log the best point to MLflow; return a summary."""
    lake = paths.lake_dir(home)
    chains, bars, versions = load_chain_archive(lake, underlying)
    features = load_vol_features(lake, underlying, bars)
    costs = OptionsCosts()
    config = costs.backtest_config(
        initial_cash=initial_cash, vega_unit=LAKE_VEGA_UNIT, theta_unit=LAKE_THETA_UNIT
    )
    try:
        sweep = sweep_options(family, points, chains, base={"underlying": underlying, **params},
                              config=config, bars=bars, vol_features=features)  # fmt: skip
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    results = sweep.table.with_columns(
        pl.Series("returns", [sweep.returns[:, k].tolist() for k in range(len(points))]),
        pl.lit(None, dtype=pl.String).alias("error"),
    )
    wf = walk_forward(results, train, test, anchored=False)
    ranked = results.sort("sharpe_ratio", descending=True, nulls_last=True)
    best = ranked.row(0, named=True)
    data_version = repro.combined_version(versions)
    span = f"{sweep.sessions[0]}..{sweep.sessions[-1]}"
    tags = RunTags(run_id, asset_key, span, {"option_chains": data_version})
    mlflow_run = tracker.start_run(family, f"{family} {underlying} sweep best", "backtest", tags)
    strategy = create_strategy(family, json.loads(best["params"]))
    result = run_options_backtest(strategy, chains, config, bars=bars, vol_features=features)
    tracker.log(
        mlflow_run,
        params={**strategy.params(), "initial_cash": initial_cash, "sweep_points": len(points)},
        metrics={
            **{k: float(best[k]) for k in ("sharpe_ratio", "total_return", "max_drawdown")},
            "trades": float(best["trades"]),
            "n_trials": float(len(points)),
            "dsr": _num(best["dsr"]),
            "oos_sharpe": wf["oos_sharpe"],
        },
    )
    _log_artifacts(tracker, mlflow_run, result, family)
    tracker.log_frame(mlflow_run, results.drop("returns"), "sweep.parquet")
    tracker.finish(mlflow_run)
    rows = ranked.drop("returns", "error", "point").with_columns(
        pl.lit(family).alias("family"),
        pl.int_range(1, pl.len() + 1).alias("rank"),
        pl.Series("psr", [_psr(sweep.returns[:, k]) for k in ranked.get_column("point")]),
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(mlflow_run)).alias("mlflow_run_id"),
        pl.lit(None, dtype=pl.String).alias("sweep_run_id"),
        pl.lit(sweep.sessions[0]).alias("start"),
        pl.lit(sweep.sessions[-1]).alias("end"),
        pl.lit(data_version).alias("data_version"),
        pl.lit(repro.git_sha()).alias("git_sha"),
        pl.lit(costs.model_dump_json()).alias("costs"),
    )
    research_tables.write_family(lake, "backtest_runs", family, rows)
    folds = wf["folds"].with_columns(
        pl.lit(family).alias("family"),
        pl.lit(wf["oos_sharpe"]).alias("oos_sharpe"),
        pl.lit(mlflow_run).alias("mlflow_run_id"),
    )
    research_tables.write_family(lake, "walk_forward", family, folds)
    return {
        "mlflow_run_id": mlflow_run,
        "sessions": len(sweep.sessions),
        "n_trials": len(points),
        "best_params": best["params"],
        "oos_sharpe": wf["oos_sharpe"],
        "final_equity": result.final_equity,
        "sharpe_ratio": best["sharpe_ratio"],
        "table": ranked.drop("returns", "error"),
    }


def _num(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def _psr(rets: np.ndarray) -> float | None:
    value = analytics.probabilistic_sharpe_ratio(rets) if np.std(rets) > 0 else None
    return None if value is None or not np.isfinite(value) else float(value)
