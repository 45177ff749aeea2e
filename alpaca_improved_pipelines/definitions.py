"""The single entry point of the Dagster code location (``workspace.yaml`` points here)."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """Every asset, check, job, schedule, sensor and resource under ``defs/``."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent.parent)
