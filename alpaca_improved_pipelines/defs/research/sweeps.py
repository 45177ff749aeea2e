"""The work behind the sweep assets: data → resumable sweep → significance → MLflow → lake."""

from __future__ import annotations

import datetime as dt
import os
import signal
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from alpaca_improved_pipelines.backtesting import research_tables
from alpaca_improved_pipelines.backtesting.checkpoints import Checkpoints
from alpaca_improved_pipelines.backtesting.data import GatedCloseMatrix
from alpaca_improved_pipelines.backtesting.engines import SweepEngine, open_engine
from alpaca_improved_pipelines.backtesting.families import family
from alpaca_improved_pipelines.backtesting.logging import log_sweep
from alpaca_improved_pipelines.backtesting.sweep import SweepSpec, add_significance, run_sweep
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.tracking import repro
from alpaca_improved_pipelines.tracking.mlflow_store import SWEEP_KEY_TAG, RunTags, Tracker
from contracts import paths
from contracts.manifest import SignalCosts

LEADERBOARD_COLUMNS = [
    "family",
    "rank",
    "params",
    "sharpe_ratio",
    "sortino_ratio",
    "annual_return",
    "max_drawdown",
    "total_return",
    "trades",
    "psr",
    "dsr",
    "n_trials",
    "mlflow_run_id",
    "sweep_run_id",
    "start",
    "end",
    "data_version",
    "git_sha",
    "costs",  # contracts.manifest.SignalCosts as JSON: what the approved manifest records
]


class SweepConfig(dg.Config):
    """How a sweep runs."""

    start: str | None = Field(default=None, description="First session (default: lake start)")
    end: str | None = Field(default=None, description="Last session (default: lake end)")
    search: str = Field(default="grid", description="grid or random")
    n_random: int = Field(default=50, description="points for random search")
    seed: int = Field(default=7, description="random-search seed")
    fees: float = Field(default=0.001, description="fee per trade as a fraction of notional")
    slippage: float = Field(default=0.0005, description="slippage as a fraction of price")
    workers: int = Field(
        default=2,
        description="processes (the machine has 2 cores); with ALPACA_IMPROVED_SWEEP_ENGINE=dask "
        "and no scheduler address, the LocalCluster's workers (capped at the cores)",
    )
    top_k: int = Field(default=3, description="variants logged as MLflow child runs")


def _date(value: str | None, what: str) -> dt.date | None:
    if value is None:
        return None
    from alpaca_improved_pipelines.calendar import parse_date

    return parse_date(value, what)


def _points(name: str, config: SweepConfig, n_sessions: int) -> list[dict[str, Any]]:
    fam = family(name)
    if config.search == "grid":
        pts = fam.grid()
    elif config.search == "random":
        pts = fam.sample(config.n_random, config.seed)
    else:
        raise ConfigError(f"search {config.search!r} is not grid or random")
    # points whose lookback leaves under half the sample to trade are not worth a trial
    usable = [p for p in pts if fam.lookback(p) < n_sessions // 2]
    if not usable:
        raise ConfigError(
            f"{n_sessions} sessions are too few for any {name} point; "
            "backfill more history (the slowest lookback needs 2x its window)"
        )
    return usable


def _crash_hook() -> Any:
    """Test hook: ``ALPACA_IMPROVED_SWEEP_CRASH_AFTER=N`` SIGKILLs the process after N chunks."""
    limit = os.environ.get("ALPACA_IMPROVED_SWEEP_CRASH_AFTER")
    if not limit:
        return None
    done = []

    def hook(i: int, total: int) -> None:
        done.append(i)
        if len(done) >= int(limit):
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def run_family_sweep(
    context: dg.AssetExecutionContext, name: str, config: SweepConfig, home: Path, tracker: Tracker
) -> dg.MaterializeResult:
    """One sweep of family ``name`` end to end; returns the asset's materialization."""
    # the engine first: a bad ALPACA_IMPROVED_SWEEP_ENGINE / _DASK_SCHEDULER fails here, before
    # any data is loaded or any MLflow run is opened
    with open_engine(config.workers) as engine:
        return _run_family_sweep(context, name, config, home, tracker, engine)


def _run_family_sweep(
    context: dg.AssetExecutionContext,
    name: str,
    config: SweepConfig,
    home: Path,
    tracker: Tracker,
    engine: SweepEngine,
) -> dg.MaterializeResult:
    abandoned = tracker.mark_abandoned_runs_failed(name)
    data = family(name).load(
        paths.lake_dir(home), _date(config.start, "start"), _date(config.end, "end")
    )
    if isinstance(data, GatedCloseMatrix) and data.sessions_without_minutes:
        context.log.warning(
            f"{name}: {data.sessions_without_minutes} of {len(data.sessions)} sessions have no "
            "stock_bars_1m; intraday-gated points do not enter on them (backfill minute bars)"
        )
    spec = SweepSpec(
        name,
        _points(name, config, len(data.sessions)),
        config.fees,
        config.slippage,
        search=config.search,
        seed=config.seed if config.search == "random" else None,
    )
    data_version = repro.combined_version(data.data_versions)
    key = spec.key(data_version)
    tags = RunTags(
        context.run_id,
        context.asset_key.to_user_string(),
        data.partition_range,
        {data.table: data_version},
    )
    parent = tracker.start_run(
        name, f"{name} sweep {key}", "sweep", tags, extra_tags={SWEEP_KEY_TAG: key}
    )
    try:
        results, resumed = run_sweep(
            spec,
            data,
            Checkpoints.for_sweep(home, name, key),  # the lake's bucket when it is on S3
            config.workers,
            on_chunk=_crash_hook(),
            engine=engine,
        )
        done = results.filter(pl.col("error").is_null()).height
        ledger = tracker.trials_so_far(name, exclude_key=key) + done
        results = add_significance(results, ledger)
        children = log_sweep(tracker, parent, spec, results, data, tags, config.top_k)
    except BaseException:
        tracker.finish(parent, "FAILED")
        raise
    costs = SignalCosts(fees=spec.fees, slippage=spec.slippage).model_dump_json()
    board = _leaderboard_rows(name, results, children, parent, data, data_version).with_columns(
        pl.lit(costs).alias("costs")
    )
    lake = paths.lake_dir(home)
    research_tables.write_family(lake, "backtest_runs", name, board)
    research_tables.write_family(
        lake, "sweep_results", name, results.with_columns(pl.lit(name).alias("family"))
    )
    return dg.MaterializeResult(
        metadata=_metadata(
            name, results, board, tracker, parent, resumed, abandoned, data.partition_range
        )
    )


def _leaderboard_rows(
    name: str, results: pl.DataFrame, children: list[str], parent: str, data: Any, data_version: str
) -> pl.DataFrame:
    ok = results.filter(pl.col("error").is_null()).sort(
        "sharpe_ratio", descending=True, nulls_last=True
    )
    ranked = ok.with_row_index("rank", offset=1).with_columns(
        pl.lit(name).alias("family"),
        pl.Series(
            "mlflow_run_id", children + [None] * (ok.height - len(children)), dtype=pl.String
        ),
        pl.lit(parent).alias("sweep_run_id"),
        pl.lit(data.sessions[0]).alias("start"),
        pl.lit(data.sessions[-1]).alias("end"),
        pl.lit(data_version).alias("data_version"),
        pl.lit(repro.git_sha()).alias("git_sha"),
        pl.col("rank").cast(pl.Int64),
    )
    return ranked.select([c for c in LEADERBOARD_COLUMNS if c in ranked.columns])


def _metadata(
    name: str,
    results: pl.DataFrame,
    board: pl.DataFrame,
    tracker: Tracker,
    parent: str,
    resumed: int,
    abandoned: int,
    span: str,
) -> dict[str, Any]:
    top = board.head(5).select(
        "rank", "params", "sharpe_ratio", "dsr", "total_return", "max_drawdown", "trades"
    )
    md = top.with_columns(pl.col(pl.Float64).round(4)).to_pandas().to_markdown(index=False)
    return {
        "trials": results.height,
        "failed_trials": results.filter(pl.col("error").is_not_null()).height,
        "trials_in_ledger": int(board.select(pl.col("n_trials").max()).item() or 0)
        if board.height
        else 0,
        "best_sharpe": float(board.select(pl.col("sharpe_ratio").max()).item() or 0.0)
        if board.height
        else 0.0,
        "resumed_chunks": resumed,
        "abandoned_runs_marked_failed": abandoned,
        "sessions": span,
        "mlflow_run": dg.MetadataValue.url(tracker.run_url(parent)),
        "mlflow_run_id": parent,
        "top_variants": dg.MetadataValue.md(md),
    }
