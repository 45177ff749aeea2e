"""MLflow tracking as a Dagster resource (SQLite store under the data root)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from alpaca_improved_pipelines.tracking.mlflow_store import Tracker


class TrackingResource(dg.ConfigurableResource):
    """``sqlite:///<home>/mlflow.db`` with artifacts in ``<home>/mlartifacts``."""

    home: str

    def tracker(self) -> Tracker:
        return Tracker(Path(self.home))
