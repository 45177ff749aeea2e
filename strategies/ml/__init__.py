"""The ML signal family: versioned features and labels on daily closes, the ``gbm_signal``
strategy, and the process-local registry binding a trained model to its content hash.

Training lives in ``research.ml`` (scikit-learn); this package only scores bound predictors, so it
imports nothing beyond numpy and polars. Importing it registers ``gbm_signal``.
"""

from strategies.ml.features import (
    FEATURE_NAMES,
    FEATURE_NAMES_V2,
    FEATURE_SET_VERSION,
    FEATURE_SETS,
    LOOKBACK,
    VOL_FEATURES,
    feature_matrix,
    features,
    features_v2,
    labels,
)
from strategies.ml.gbm_signal import GBMSignal, GBMSignalConfig
from strategies.ml.inputs import MLInputs, snapshot_columns, vol_matrix
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
    "FEATURE_NAMES_V2",
    "FEATURE_SETS",
    "FEATURE_SET_VERSION",
    "LOOKBACK",
    "VOL_FEATURES",
    "GBMSignal",
    "GBMSignalConfig",
    "MLInputs",
    "ModelNotBoundError",
    "Predictor",
    "bind_model",
    "bound_predictor",
    "feature_matrix",
    "features",
    "features_v2",
    "is_bound",
    "labels",
    "proba_predictor",
    "snapshot_columns",
    "unbind_model",
    "vol_matrix",
]
