"""The work behind ``gbm_signal_model``: lake inputs of the feature set (closes; ``v2`` also
volumes and vol surfaces, :mod:`~alpaca_improved_pipelines.defs.ml.inputs`) → purged-CV search
and fit on the head →
out-of-sample vectorbt backtest of the family's ``signals()`` on the held-out tail → Sharpe and
Deflated Sharpe over the search's trials → MLflow run, registered model version → the
``backtest_runs`` / ``walk_forward`` rows the leaderboard, candidates and approval read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field
from scipy import stats

from alpaca_improved_pipelines.backtesting import research_tables
from alpaca_improved_pipelines.backtesting.data import CloseMatrix, load_for
from alpaca_improved_pipelines.defs.ml.inputs import (
    example_rows,
    ml_inputs,
    surface_coverage,
    table_versions,
)
from alpaca_improved_pipelines.defs.ml.registry import log_and_register
from alpaca_improved_pipelines.defs.research.sweeps import LEADERBOARD_COLUMNS
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.tracking import repro
from alpaca_improved_pipelines.tracking.mlflow_store import SWEEP_KEY_TAG, RunTags, Tracker
from contracts import paths
from contracts.manifest import SignalCosts
from research.ml import Dataset, TrainingConfig, TrainingResult, build_dataset, train
from research.ml.train import DEFAULT_GRID
from strategies import analytics
from strategies.ml import (
    FEATURE_SET_VERSION,
    LOOKBACK,
    GBMSignal,
    GBMSignalConfig,
    bind_model,
    proba_predictor,
)

FAMILY = GBMSignal.name
KIND = "ml_model"  # the MLflow run kind of a training (its trials feed the family's ledger)
INIT_CASH = 100_000.0


class GBMTrainConfig(dg.Config):
    """How the gbm_signal model is trained, validated and backtested."""

    start: str | None = Field(default=None, description="First session (default: lake start)")
    end: str | None = Field(default=None, description="Last session (default: lake end)")
    model_name: str = Field(default="gbm_signal", description="MLflow registered model name")
    horizon: int = Field(default=5, ge=1, description="label: sign of the h-bar forward return")
    feature_set: str = Field(
        default=FEATURE_SET_VERSION,
        description="features: v1 (closes) or v2 (v1 + volume + the vol surface)",
    )
    holdout: float = Field(default=0.3, description="tail fraction kept out of sample")
    seed: int = Field(default=7, description="random_state of every model")
    n_folds: int = Field(default=5, ge=3, description="purged walk-forward folds of the head")
    embargo: int = Field(default=0, ge=0, description="bars embargoed after each test fold")
    grid_json: str = Field(
        default="", description='hyperparameter grid, e.g. {"max_depth": [2, 3]}'
    )
    enter: float = Field(default=0.55, description="enter above this P(up)")
    leave: float = Field(default=0.45, description="exit below this P(up)")
    fees: float = Field(default=0.001, description="fee per trade as a fraction of notional")
    slippage: float = Field(default=0.0005, description="slippage as a fraction of price")

    def training(self) -> TrainingConfig:
        """The search: the default grid unless ``grid_json`` names one."""
        try:
            grid = json.loads(self.grid_json) if self.grid_json else dict(DEFAULT_GRID)
            if not isinstance(grid, dict) or not all(
                isinstance(v, list | tuple) for v in grid.values()
            ):
                raise ValueError("not an object of lists")
        except ValueError as exc:
            raise ConfigError(
                f'grid_json {self.grid_json!r}: {exc}; e.g. {{"max_depth": [2, 3]}}'
            ) from None
        return TrainingConfig(seed=self.seed, n_folds=self.n_folds, embargo=self.embargo, grid=grid)


def split_row(n_sessions: int, holdout: float, horizon: int) -> int:
    """First bar of the held-out tail (ConfigError when either side is too short)."""
    if not 0.0 < holdout < 1.0:
        raise ConfigError(f"holdout must be a fraction in (0, 1), got {holdout}")
    cut = int(round(n_sessions * (1.0 - holdout)))
    min_head = 2 * (LOOKBACK + horizon)
    if n_sessions - cut < 20 or cut < min_head:
        raise ConfigError(
            f"{n_sessions} sessions cannot be split {1 - holdout:.0%}/{holdout:.0%} into a "
            f"training head of >= {min_head} and a tail "
            "of >= 20 sessions; backfill more history or change holdout"
        )
    return cut


def oos_backtest(
    strategy: GBMSignal,
    data: CloseMatrix,
    cut: int,
    fees: float,
    slippage: float,
    inputs: object | None = None,
) -> dict[str, Any]:
    """vectorbt ``from_signals`` on the tail with the family's own ``signals()`` of ``inputs``
    (default the closes; computed on the whole series: features at a tail bar read only bars
    up to it)."""
    import vectorbt as vbt

    entries, exits = strategy.signals(data.close if inputs is None else inputs)
    n_sym = len(data.symbols)
    pf = vbt.Portfolio.from_signals(
        data.close[cut:],
        np.asarray(entries)[cut:],
        np.asarray(exits)[cut:],
        fees=fees,
        slippage=slippage,
        freq="1D",
        init_cash=INIT_CASH / n_sym,
    )
    value = np.asarray(pf.value()).reshape(-1, n_sym).sum(axis=1)
    returns = value / np.r_[INIT_CASH, value[:-1]] - 1.0
    return {
        "returns": returns,
        "metrics": analytics.summary(returns),
        "trades": int(np.asarray(pf.trades.count()).sum()),
    }


def significance(
    returns: np.ndarray, result: TrainingResult, n_trials: int | None = None
) -> dict[str, float]:
    """PSR, and the DSR deflated by every search trial: the variance of this search's
    walk-forward CV Sharpe ratios, and ``n_trials`` = the trial ledger (every trial of every
    training of the family on record, this one's included; default this search's trials)."""
    n_trials = result.n_trials if n_trials is None else n_trials
    sr = float(analytics.sharpe_ratio(returns, annualization=1))  # per period, as DSR wants
    trial_srs = result.trials["cv_sharpe"].to_numpy()
    out = {"psr": float(analytics.probabilistic_sharpe_ratio(returns)), "dsr": float("nan")}
    finite = trial_srs[np.isfinite(trial_srs)]
    if np.isfinite(sr) and finite.size >= 2 and np.var(finite, ddof=1) > 0:
        out["dsr"] = float(
            analytics.deflated_sharpe_ratio(
                sr,
                float(np.var(finite, ddof=1)),
                max(n_trials, 2),
                returns.size,
                float(stats.skew(returns)),
                float(stats.kurtosis(returns, fisher=False)),
            )
        )
    return out


def _date(value: str | None, what: str) -> dt.date | None:
    from alpaca_improved_pipelines.calendar import parse_date

    return None if value is None else parse_date(value, what)


def run_training(
    settings: GBMTrainConfig, home: Path, tracker: Tracker, tags: tuple[str, str]
) -> dict[str, Any]:
    """Train, backtest out of sample, log and register; returns what the asset reports."""
    lake = paths.lake_dir(home)
    data = load_for("1d", lake, _date(settings.start, "start"), _date(settings.end, "end"))
    try:
        GBMSignalConfig(enter=settings.enter, leave=settings.leave, horizon=settings.horizon,
                        feature_set=settings.feature_set)  # fmt: skip
    except ValueError as exc:
        raise ConfigError(f"gbm_signal_model config: {exc}") from None
    cut = split_row(len(data.sessions), settings.holdout, settings.horizon)
    inputs, versions = ml_inputs(lake, data, settings.feature_set)
    ds = build_dataset(inputs, settings.horizon, stop=cut, feature_set=settings.feature_set)
    result = train(ds, settings.training())
    data_version = repro.combined_version(versions)
    # the search's identity: the same search on the same data (a retry) counts its trials once
    search = settings.model_dump(mode="json")
    if search["feature_set"] == "v1":  # v1 searches keep the identity they had before v2
        del search["feature_set"]
    key = hashlib.sha256(json.dumps([search, data_version], sort_keys=True).encode()).hexdigest()
    key = key[:16]
    ledger = tracker.trials_so_far(FAMILY, exclude_key=key, kind=KIND) + result.n_trials
    run_id = tracker.start_run(
        FAMILY, f"{FAMILY} training", KIND,
        RunTags(tags[0], tags[1], data.partition_range, table_versions(versions)),
        extra_tags={SWEEP_KEY_TAG: key},
    )  # fmt: skip
    try:
        out = _evaluate_and_log(
            settings, (data, inputs, ds), cut, result, tracker, run_id, data_version, ledger
        )
        research_tables.write_family(lake, "backtest_runs", FAMILY, out["board"])
        research_tables.write_family(lake, "walk_forward", FAMILY, out["walk_forward"])
    except BaseException:
        tracker.finish(run_id, "FAILED")
        raise
    tracker.finish(run_id)
    return {**out, "surface_coverage": surface_coverage(inputs, data.symbols)}


def _evaluate_and_log(
    settings: GBMTrainConfig,
    loaded: tuple[CloseMatrix, object, Dataset],
    cut: int,
    result: TrainingResult,
    tracker: Tracker,
    run_id: str,
    data_version: str,
    ledger: int,
) -> dict[str, Any]:
    data, inputs, ds = loaded
    mv = log_and_register(tracker, run_id, result.model, settings.model_name, example_rows(ds),
                          feature_set=result.feature_set)  # fmt: skip
    tracker.log(run_id, params={"registered_model": mv.uri})  # the sha256 tag: log_and_register
    bind_model(mv.sha256, proba_predictor(result.model))  # the backtest runs the logged model
    config = GBMSignalConfig(
        symbols=tuple(data.symbols),
        model_name=mv.name,
        model_version=mv.version,
        model_sha256=mv.sha256,
        feature_set=settings.feature_set,
        horizon=settings.horizon,
        enter=settings.enter,
        leave=settings.leave,
    )
    oos = oos_backtest(GBMSignal(config), data, cut, settings.fees, settings.slippage, inputs)
    sig = {**significance(oos["returns"], result, ledger), "trials_ledger": float(ledger)}
    _log_run(tracker, run_id, settings, result, data, cut, oos, sig)
    board = _board_row(config, oos, sig, result, data, run_id, data_version, settings)
    return {"model": mv, "result": result, "oos": oos, "significance": sig, "run_id": run_id,
            "board": board, "walk_forward": _wf_rows(result, oos, run_id),
            "train_sessions": cut, "test_sessions": len(data.sessions) - cut}  # fmt: skip


def _log_run(
    tracker: Tracker,
    run_id: str,
    settings: GBMTrainConfig,
    result: TrainingResult,
    data: CloseMatrix,
    cut: int,
    oos: dict[str, Any],
    sig: dict[str, float],
) -> None:
    best = result.trials.filter("chosen").row(0, named=True)
    tracker.log(
        run_id,
        params={
            **{f"hp.{k}": v for k, v in result.params.items()},
            "seed": result.seed,
            "features": ",".join(result.feature_names),
            "feature_set": result.feature_set,
            "horizon": settings.horizon,
            "holdout": settings.holdout,
            "n_folds": settings.n_folds,
            "embargo": settings.embargo,
            "enter": settings.enter,
            "leave": settings.leave,
            "train_end": data.sessions[cut - 1].isoformat(),
            "test_start": data.sessions[cut].isoformat(),
            "symbols": ",".join(data.symbols),
        },
        metrics={
            "n_trials": result.n_trials,
            "cv_log_loss": best["log_loss"],
            "cv_accuracy": best["accuracy"],
            "cv_auc": best["auc"],
            "cv_sharpe": best["cv_sharpe"],
            "training_seconds": result.seconds,
            "oos_trades": oos["trades"],
            **{f"oos_{k}": v for k, v in oos["metrics"].items()},
            **sig,
        },
    )
    tracker.log_frame(run_id, result.cv, "cv_folds.parquet")
    tracker.log_frame(run_id, result.trials, "cv_trials.parquet")


def _board_row(
    config: GBMSignalConfig,
    oos: dict[str, Any],
    sig: dict[str, float],
    result: TrainingResult,
    data: CloseMatrix,
    run_id: str,
    data_version: str,
    settings: GBMTrainConfig,
) -> pl.DataFrame:
    params = {k: v for k, v in asdict(config).items() if k != "symbols"}
    m = oos["metrics"]
    row = {
        "family": FAMILY,
        "rank": 1,
        "params": json.dumps(params, sort_keys=True),
        **{k: float(m[k]) for k in ("sharpe_ratio", "sortino_ratio", "annual_return")},
        **{k: float(m[k]) for k in ("max_drawdown", "total_return")},
        "trades": oos["trades"],
        "psr": sig["psr"],
        "dsr": sig["dsr"],
        "n_trials": int(sig["trials_ledger"]),
        "mlflow_run_id": run_id,
        "sweep_run_id": run_id,
        "start": data.sessions[0],
        "end": data.sessions[-1],
        "data_version": data_version,
        "git_sha": repro.git_sha(),
        "costs": SignalCosts(fees=settings.fees, slippage=settings.slippage).model_dump_json(),
    }
    assert list(row) == LEADERBOARD_COLUMNS, "keep the gbm_signal row in the leaderboard's shape"
    return pl.DataFrame([row]).with_columns(pl.col("rank", "trades", "n_trials").cast(pl.Int64))


def _wf_rows(result: TrainingResult, oos: dict[str, Any], run_id: str) -> pl.DataFrame:
    """The chosen trial's purged walk-forward folds, with the held-out tail's Sharpe as the
    family's out-of-sample Sharpe (what the leaderboard joins and the gates check)."""
    chosen = int(result.trials.filter("chosen")["trial"][0])
    return result.cv.filter(pl.col("trial") == chosen).with_columns(
        pl.lit(FAMILY).alias("family"),
        pl.lit(float(oos["metrics"]["sharpe_ratio"])).alias("oos_sharpe"),
        pl.lit(run_id).alias("mlflow_run_id"),
    )
