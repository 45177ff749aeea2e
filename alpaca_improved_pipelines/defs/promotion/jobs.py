"""Promotion jobs."""

import dagster as dg

approve_job = dg.define_asset_job(
    "approve_job",
    selection=dg.AssetSelection.assets("candidates", "approved_manifest"),
    description="Re-evaluate candidates and approve one (config: family, approver, reason).",
)
