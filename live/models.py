"""Loading the trained model a deployment names, exactly that one, verified before it is used.

A manifest of an ML family (a strategy config with ``model_name``, ``model_version`` and
``model_sha256``, e.g. ``gbm_signal``) names a version in the MLflow Model Registry. The loader
downloads ``models:/<name>/<version>`` from the tracking store, reads the serialized model file
(``model.pkl``), checks its sha256 against the manifest **before** unpickling, unpickles those
same verified bytes and binds the predictor under the hash (:func:`strategies.ml.bind_model`).
Anything missing or different is a :class:`~live.errors.ConfigError` naming the manifest, the
model and both hashes; the deployment is then skipped with nothing bound.

The tracking store, in order: ``ALPACA_IMPROVED_MLFLOW_TRACKING_URI`` (the runner's own setting,
e.g. ``http://mlflow:5000`` or ``sqlite:////data/mlflow.db``), ``MLFLOW_TRACKING_URI`` when it is a
server (as the pipelines honour it), else the data root's store as the pipelines write it
(``<home>/mlflow.db``, or Postgres with ``ALPACA_IMPROVED_DATABASE_URL``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contracts import database, paths
from live.errors import ConfigError
from strategies.base import Strategy
from strategies.ml import bind_model, is_bound, proba_predictor

TRACKING_ENV = "ALPACA_IMPROVED_MLFLOW_TRACKING_URI"
MODEL_FILE = "model.pkl"  # mlflow.sklearn's file with serialization_format="pickle"

_LOADED: set[tuple[str, str, str, str]] = set()  # (uri, name, version, sha256) bound already
_LOCK = threading.Lock()


def tracking_uri(home: Path | None, environ: Mapping[str, str] | None = None) -> str:
    """The MLflow store models are fetched from (see the module docstring for the order).

    Raises:
        ConfigError: Nothing is configured and no data root is known.
    """
    env = os.environ if environ is None else environ
    if uri := (env.get(TRACKING_ENV) or "").strip():
        return uri
    server = (env.get("MLFLOW_TRACKING_URI") or "").strip()
    if server.startswith(("http://", "https://")):
        return server
    if home is None:
        raise ConfigError(
            f"no MLflow store to load models from: set {TRACKING_ENV} (e.g. "
            "sqlite:////data/mlflow.db or http://mlflow:5000)"
        )
    return database.mlflow_tracking_uri(home, env)


def needs_model(strategy: Strategy) -> bool:
    """Whether the strategy's config names a model by hash."""
    return hasattr(strategy.config, "model_sha256")


def home_of(manifest: Path) -> Path | None:
    """The data root of a manifest in ``<home>/live/deployments`` (None elsewhere)."""
    home = manifest.parent.parent.parent
    return home if paths.deployments_dir(home) == manifest.parent else None


def _download(uri: str, name: str, version: str, where: Path) -> bytes:
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    source = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_download_uri(
        name, version
    )
    local = Path(mlflow.artifacts.download_artifacts(source, dst_path=str(where), tracking_uri=uri))
    return (local / MODEL_FILE).read_bytes()


def fetch_verified(uri: str, name: str, version: str, sha256: str, manifest: str) -> bytes:
    """The bytes of ``models:/<name>/<version>``'s model file, verified against ``sha256``.

    Raises:
        ConfigError: The version or its file cannot be fetched, or its hash differs.
    """
    label = f"models:/{name}/{version}"
    try:
        with tempfile.TemporaryDirectory(prefix="alpaca-improved-model-") as tmp:
            raw = _download(uri, name, version, Path(tmp))
    except Exception as exc:  # noqa: BLE001 - MLflow raises its own hierarchy; name the input
        raise ConfigError(
            f"{manifest}: cannot load model {label} from {database.redact(uri)} "
            f"({type(exc).__name__}: {str(exc)[:200]}); register that version or fix the "
            "manifest's model_name/model_version"
        ) from None
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha256:
        raise ConfigError(
            f"{manifest}: model {label} has sha256 {actual}, the manifest says {sha256}; "
            "refusing to load it (re-approve the model version you mean, or restore its artifact)"
        )
    return raw


def load_model(strategy: Strategy, manifest: str, home: Path | None) -> None:
    """Fetch, verify and bind the model ``strategy`` names (no-op for other strategies).

    Raises:
        ConfigError: Naming the manifest, the model and what is wrong; nothing is bound.
    """
    if not needs_model(strategy):
        return
    config: Any = strategy.config
    name, version, sha = config.model_name, str(config.model_version), config.model_sha256
    if not (name and version and sha):
        raise ConfigError(
            f"{manifest}: {strategy.name} needs model_name, model_version and model_sha256 "
            f"(got {name!r}, {version!r}, {sha!r})"
        )
    uri = tracking_uri(home)
    key = (uri, name, version, sha)
    with _LOCK:
        if key in _LOADED and is_bound(sha):
            return
        raw = fetch_verified(uri, name, version, sha, manifest)
        try:
            model = pickle.loads(raw)  # noqa: S301 - the bytes' sha256 is the approved one
            predictor = proba_predictor(model)
        except Exception as exc:  # noqa: BLE001 - a verified file that will not load
            raise ConfigError(
                f"{manifest}: model models:/{name}/{version} (sha256 {sha}) does not load: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        bind_model(sha, predictor)
        _LOADED.add(key)
