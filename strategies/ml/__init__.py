"""The ML signal family: versioned features and labels on daily closes, the ``gbm_signal``
strategy, and the process-local registry binding a trained model to its content hash.

Training lives in ``research.ml`` (scikit-learn); this package only scores bound predictors, so it
imports nothing beyond numpy. Importing it registers ``gbm_signal``.
"""

from strategies.ml.features import FEATURE_NAMES, FEATURE_SET_VERSION, LOOKBACK, features, labels
from strategies.ml.gbm_signal import GBMSignal, GBMSignalConfig
from strategies.ml.registry import (
    ModelNotBoundError,
    Predictor,
    bind_model,
    bound_predictor,
    is_bound,
    proba_predictor,
    unbind_model,
)

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_SET_VERSION",
    "LOOKBACK",
    "GBMSignal",
    "GBMSignalConfig",
    "ModelNotBoundError",
    "Predictor",
    "bind_model",
    "bound_predictor",
    "features",
    "is_bound",
    "labels",
    "proba_predictor",
    "unbind_model",
]
