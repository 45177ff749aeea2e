"""Jobs over the market-data and feature assets."""

from __future__ import annotations

import dagster as dg

market_data_job = dg.define_asset_job(
    "market_data_job",
    selection=dg.AssetSelection.groups("market_data", "features"),
    description="Bars for the universe, quality gates, then features, for the selected sessions.",
)
