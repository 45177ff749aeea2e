"""The ML signal family's asset: train ``gbm_signal``'s model on the lake's daily bars (feature
set ``v2``: and the vol surfaces), backtest it out of sample, log and register it in MLflow, and
write the candidate row promotion reads."""

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.defs.market_data.assets import stock_bars_1d
from alpaca_improved_pipelines.defs.ml.registry import MODEL_FILE, ModelVersion
from alpaca_improved_pipelines.defs.ml.training import GBMTrainConfig, run_training
from alpaca_improved_pipelines.defs.options.assets import vol_surface
from alpaca_improved_pipelines.defs.resources import MLFLOW_POOL
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.tracking import TrackingResource
from alpaca_improved_pipelines.tracking.mlflow_store import Tracker

REGISTERED_HASH = "registered_model_hash"


@dg.asset(
    group_name="research",
    deps=[stock_bars_1d, vol_surface],  # v2 reads the surfaces (and the chains' flows)
    kinds={"mlflow", "scikitlearn", "vectorbt"},
    pool=MLFLOW_POOL,
    check_specs=[dg.AssetCheckSpec(REGISTERED_HASH, asset="gbm_signal_model", blocking=True)],
)
def gbm_signal_model(
    context: dg.AssetExecutionContext,
    config: GBMTrainConfig,
    lake: LakeResource,
    tracking: TrackingResource,
) -> dg.MaterializeResult:
    """gbm_signal's model: purged walk-forward search, out-of-sample backtest, MLflow version."""
    tracker = tracking.tracker()
    out = run_training(
        config, Path(lake.home), tracker, (context.run_id, context.asset_key.to_user_string())
    )
    mv: ModelVersion = out["model"]
    if bare := sorted(s for s, share in out["surface_coverage"].items() if share == 0.0):
        context.log.warning(
            f"no vol surface in the lake for {bare}: their v2 vol-surface features are NaN; "
            "add them to option_chains' underlyings and backfill options_job to use them"
        )
    return dg.MaterializeResult(
        metadata=_metadata(out, tracker),
        check_results=[_hash_check(tracker, mv)],
    )


def _hash_check(tracker: Tracker, mv: ModelVersion) -> dg.AssetCheckResult:
    """The registered version's model file, downloaded back, hashes to what the row names."""
    import mlflow.artifacts

    source = tracker.client.get_model_version_download_uri(mv.name, mv.version)
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(source, dst_path=tmp, tracking_uri=tracker.uri)
        actual = hashlib.sha256((Path(local) / MODEL_FILE).read_bytes()).hexdigest()
    return dg.AssetCheckResult(
        check_name=REGISTERED_HASH,
        passed=actual == mv.sha256,
        metadata={"model": mv.uri, "expected": mv.sha256, "actual": actual},
    )


def _metadata(out: dict[str, Any], tracker: Tracker) -> dict[str, Any]:
    result, mv, sig = out["result"], out["model"], out["significance"]
    trials = result.trials.with_columns(pl.col(pl.Float64).round(4)).drop("params")
    metrics = out["oos"]["metrics"]
    return {
        "model": mv.uri,
        "model_sha256": mv.sha256,
        "feature_set": result.feature_set,
        "n_features": len(result.feature_names),
        "surface_coverage": dg.MetadataValue.json(out["surface_coverage"]),
        "hyperparameters": dg.MetadataValue.json(result.params),
        "n_trials": result.n_trials,
        "cv_trials": dg.MetadataValue.md(trials.to_pandas().to_markdown(index=False)),
        "training_seconds": round(result.seconds, 2),
        "train_sessions": out["train_sessions"],
        "test_sessions": out["test_sessions"],
        "oos_sharpe": float(metrics["sharpe_ratio"]),
        "oos_total_return": float(metrics["total_return"]),
        "oos_trades": out["oos"]["trades"],
        "dsr": sig["dsr"],
        "psr": sig["psr"],
        "mlflow_run_id": out["run_id"],
        "mlflow_run": dg.MetadataValue.url(tracker.run_url(out["run_id"])),
    }


ml_job = dg.define_asset_job(
    "ml_job",
    selection=[gbm_signal_model],
    description="Train, validate, backtest out of sample and register the gbm_signal model.",
)
