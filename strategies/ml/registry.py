"""Process-local binding of trained models to their content hash.

A strategy config names its model by ``model_sha256`` (the sha256 of the serialized model's
bytes); whoever loaded and verified those bytes (the research pipeline, the live runner's model
loader, a test) binds a predictor under that hash. ``decide()`` then finds exactly that model or
fails naming it; there is no "latest" and no implicit loading here (``strategies`` does no I/O).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import numpy as np

# rows of features (float64, shape (n, k)) -> probability that the label is 1, shape (n,)
Predictor = Callable[[np.ndarray], np.ndarray]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_BOUND: dict[str, Predictor] = {}
_LOCK = threading.Lock()


class ModelNotBoundError(LookupError):
    """The model a strategy names is not bound in this process."""


def check_sha256(value: str, what: str = "model_sha256") -> str:
    """``value`` when it is a lower-case hex sha256, else ValueError naming ``what``."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError(f"{what} must be 64 lower-case hex digits (a sha256), got {value!r}")
    return value


def bind_model(sha256: str, predictor: Predictor) -> None:
    """Bind ``predictor`` as the model whose serialized bytes hash to ``sha256``."""
    check_sha256(sha256)
    if not callable(predictor):
        raise TypeError(f"predictor for {sha256[:12]} must be callable, got {type(predictor)}")
    with _LOCK:
        _BOUND[sha256] = predictor


def unbind_model(sha256: str) -> None:
    """Forget the model bound under ``sha256`` (no error when none is)."""
    with _LOCK:
        _BOUND.pop(sha256, None)


def is_bound(sha256: str) -> bool:
    """Whether a predictor is bound under ``sha256``."""
    return sha256 in _BOUND


def bound_predictor(sha256: str, model: str) -> Predictor:
    """The predictor bound under ``sha256``; ModelNotBoundError naming ``model`` otherwise."""
    predictor = _BOUND.get(sha256)
    if predictor is None:
        raise ModelNotBoundError(
            f"model {model} (sha256 {sha256[:12] or '<none>'}...) is not bound in this process; "
            "load it through the live model loader or strategies.ml.bind_model(sha256, predictor)"
        )
    return predictor


def proba_predictor(model: object) -> Predictor:
    """A predictor of P(label 1) from a fitted scikit-learn-style classifier (duck-typed:
    ``classes_`` and ``predict_proba``); TypeError when ``model`` is not one."""
    classes = list(getattr(model, "classes_", ()))
    predict_proba = getattr(model, "predict_proba", None)
    if not callable(predict_proba) or not classes:
        raise TypeError(f"{type(model).__name__} is not a fitted classifier with predict_proba")
    if 1 not in classes:  # trained on one class only: never up

        def never(x: np.ndarray) -> np.ndarray:
            return np.zeros(x.shape[0])

        return never
    column = classes.index(1)

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(predict_proba(x)[:, column], dtype=np.float64)

    return predict
