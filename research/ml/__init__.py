"""Training for the ML signal family (``strategies.ml``): datasets from close matrices and a
deterministic, purged-walk-forward-validated hyperparameter search. Imports ``strategies`` and
scikit-learn only (no MLflow, no Dagster: the pipeline logs and registers what this returns)."""

from research.ml.dataset import Dataset, build_dataset
from research.ml.train import TrainingConfig, TrainingResult, make_model, train, up_probability

__all__ = [
    "Dataset",
    "TrainingConfig",
    "TrainingResult",
    "build_dataset",
    "make_model",
    "train",
    "up_probability",
]
