"""Options strategy backtests over the option_chains archive, tracked in MLflow."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from alpaca_improved_pipelines.backtesting import plots, research_tables
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.tracking import repro
from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker
from contracts import paths
from contracts.greeks import LAKE_THETA_UNIT, LAKE_VEGA_UNIT
from contracts.manifest import OptionsCosts
from strategies import analytics
from strategies.backtest import run_options_backtest
from strategies.base import create_strategy
from strategies.models import CHAIN_COLUMNS
from strategies.options.vol_features import vol_feature_frame

ATTRIBUTION = ("delta", "gamma", "theta", "vega", "residual", "trading", "settlement", "fees")


def load_chain_archive(lake: Path, underlying: str) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """The chain archive of ``underlying`` (engine columns), its daily bars, and data versions."""
    sessions = storage.existing_sessions(lake, "option_chains")
    if not sessions:
        raise ConfigError(
            "no option_chains partitions in the lake; materialize options_job "
            "(alpaca-improved backfill --job options_job) first"
        )
    frames, versions = [], {}
    for s in sessions:
        path = storage.partition_path(lake, "option_chains", s)
        versions[f"option_chains/session={s}"] = storage.digest(lake, path)
        frames.append(storage.read_file(lake, path).filter(pl.col("underlying") == underlying))
    chains = pl.concat(frames).rename({"dte_days": "dte"}).select(CHAIN_COLUMNS)
    if chains.is_empty():
        raise ConfigError(
            f"option_chains has no rows for {underlying!r}; choose an underlying "
            "that is in the chains (see the option_chains view)"
        )
    days = [dt.date.fromisoformat(s) for s in sessions]
    bars = storage.read_partitions(lake, "stock_bars_1d", days, BAR_SCHEMA)
    return chains, bars.filter(pl.col("symbol") == underlying), versions


def load_vol_features(
    lake: Path, underlying: str | Sequence[str], bars: pl.DataFrame
) -> pl.DataFrame | None:
    """The vol-surface feature frame of ``underlying`` (one, or several read in one pass over
    the partitions; ``vol_surface`` partitions, ``bars`` for realized vol, the chains' volume
    and open interest), or None when the lake has no vol_surface partitions (decisions then
    see no ``vol_features``)."""
    sessions = storage.existing_sessions(lake, "vol_surface")
    if not sessions:
        return None
    wanted = [underlying] if isinstance(underlying, str) else list(underlying)
    mine = pl.col("underlying").is_in(wanted)
    surface = pl.concat(
        [
            storage.read_file(lake, storage.partition_path(lake, "vol_surface", s)).filter(mine)
            for s in sessions
        ],
        how="diagonal_relaxed",
    )
    flow_cols = ["underlying", "session", "right", "volume", "open_interest"]
    flows = [
        storage.read_file(lake, storage.partition_path(lake, "option_chains", s), flow_cols)
        for s in storage.existing_sessions(lake, "option_chains")
    ]
    chains = pl.concat(flows).filter(mine) if flows else None
    return vol_feature_frame(surface, bars, chains)


def run_options_family(
    family: str,
    underlying: str,
    params: dict[str, Any],
    initial_cash: float,
    home: Path,
    tracker: Tracker,
    run_id: str,
    asset_key: str,
) -> dict:
    """Backtest one options strategy family; log to MLflow and the lake; return the summary."""
    lake = paths.lake_dir(home)
    chains, bars, versions = load_chain_archive(lake, underlying)
    strategy = create_strategy(family, {"underlying": underlying, **params})
    costs = OptionsCosts()  # the engine's defaults, recorded with the result
    config = costs.backtest_config(
        initial_cash=initial_cash, vega_unit=LAKE_VEGA_UNIT, theta_unit=LAKE_THETA_UNIT
    )
    features = load_vol_features(lake, underlying, bars)
    result = run_options_backtest(strategy, chains, config, bars=bars, vol_features=features)
    rets = result.returns().to_numpy()
    metrics = {k: float(v) for k, v in analytics.summary(rets).items()} if rets.size else {}
    sessions = result.daily.get_column("session").to_list()
    tags = RunTags(
        run_id,
        asset_key,
        f"{sessions[0]}..{sessions[-1]}",
        {"option_chains": repro.combined_version(versions)},
    )
    mlflow_run = tracker.start_run(family, f"{family} {underlying}", "backtest", tags)
    fills = result.fills
    counts = fills.group_by("kind").len().to_dicts() if "kind" in fills.columns else []
    tracker.log(
        mlflow_run,
        params={"underlying": underlying, **strategy.params(), "initial_cash": initial_cash},
        metrics={**metrics, "final_equity": result.final_equity, "fills": float(fills.height)},
    )
    _log_artifacts(tracker, mlflow_run, result, family)
    tracker.finish(mlflow_run)
    row = {
        "family": family,
        "rank": 1,
        "params": json.dumps(strategy.params(), sort_keys=True, default=str),
        **{
            k: metrics.get(k)
            for k in (
                "sharpe_ratio",
                "sortino_ratio",
                "annual_return",
                "max_drawdown",
                "total_return",
            )
        },
        "trades": int(fills.height),
        "n_trials": 1,
        "mlflow_run_id": mlflow_run,
        "sweep_run_id": None,
        "start": sessions[0],
        "end": sessions[-1],
        "data_version": repro.combined_version(versions),
        "git_sha": repro.git_sha(),
        "costs": costs.model_dump_json(),
    }
    research_tables.write_family(lake, "backtest_runs", family, pl.DataFrame([row]))
    return {
        "mlflow_run_id": mlflow_run,
        "sessions": len(sessions),
        "fills": counts,
        "final_equity": result.final_equity,
        **metrics,
    }


def _log_artifacts(tracker: Tracker, run_id: str, result: Any, family: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("daily", "fills", "orders", "positions", "attribution"):
            tracker.log_frame(run_id, getattr(result, name), f"{name}.parquet")
        daily = result.daily
        equity = daily.get_column("equity").to_numpy()
        rets = np.concatenate(([0.0], equity[1:] / equity[:-1] - 1.0))
        for path in plots.equity_and_drawdown(
            daily.get_column("session").to_list(), rets, f"{family} equity", Path(tmp) / "equity"
        ):
            tracker.log_file(run_id, path, "plots")
        attr = result.attribution
        cols = [c for c in ATTRIBUTION if c in attr.columns]
        if cols and attr.height:
            for path in plots.attribution(
                attr.get_column("session").to_list(),
                {c: attr.get_column(c).to_numpy() for c in cols},
                f"{family}: cumulative P&L attribution",
                Path(tmp) / "greeks_attribution",
            ):
                tracker.log_file(run_id, path, "plots")
