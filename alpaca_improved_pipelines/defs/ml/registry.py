"""Logging a trained ML-family model to MLflow and registering it as a model version.

The model is saved with ``mlflow.sklearn.save_model`` (pickle serialization, a signature inferred
from a feature example and its probabilities, that input example, and the feature list and
feature-set version as MLmodel metadata) and logged to the run through the tracker's own
``MlflowClient``; the tracker never touches MLflow's global fluent state (``log_model`` needs an
active fluent run), so concurrent runs cannot interleave. The registered version's ``source`` is
the run's ``model`` directory and it is tagged with the sha256 of ``model.pkl``: the hash the
deployment manifest names and the live loader verifies before unpickling.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alpaca_improved_pipelines.tracking.mlflow_store import Tracker
from strategies.ml import FEATURE_SET_VERSION, FEATURE_SETS

MODEL_DIR = "model"
MODEL_FILE = "model.pkl"
SHA_TAG = "model_sha256"


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version and the hash of its serialized model."""

    name: str
    version: str
    sha256: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def save_model(
    model: Any, where: Path, example: np.ndarray, feature_set: str = FEATURE_SET_VERSION
) -> str:
    """Save ``model`` (trained on ``feature_set``) as an MLflow sklearn model directory at
    ``where``; returns the sha256 of its ``model.pkl``."""
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature

    proba = model.predict_proba(example)
    mlflow.sklearn.save_model(
        model,
        str(where),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE,
        signature=infer_signature(example, proba),
        input_example=example,
        metadata={"feature_names": list(FEATURE_SETS[feature_set]), "feature_set": feature_set},
        # pinned, not inferred (inference shells out to uv/pip and takes seconds)
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}"],
    )
    return hashlib.sha256((where / MODEL_FILE).read_bytes()).hexdigest()


def log_and_register(
    tracker: Tracker,
    run_id: str,
    model: Any,
    name: str,
    example: np.ndarray,
    feature_set: str = FEATURE_SET_VERSION,
) -> ModelVersion:
    """Log ``model`` under the run's ``model/`` artifacts and register a new version of
    ``name`` from it, tagged with its sha256."""
    client = tracker.client
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / MODEL_DIR
        sha = save_model(model, local, example, feature_set)
        client.log_artifacts(run_id, str(local), MODEL_DIR)
    try:
        client.get_registered_model(name)
    except Exception:  # noqa: BLE001 - MLflow raises RestException for a missing model
        client.create_registered_model(name, description="alpaca-improved ML signal model")
    source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_DIR}"
    mv = client.create_model_version(name, source, run_id=run_id, tags={SHA_TAG: sha})
    client.set_tag(run_id, SHA_TAG, sha)
    return ModelVersion(name, str(mv.version), sha)
