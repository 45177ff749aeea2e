"""Jobs over the market-data and feature assets."""

from __future__ import annotations

import dagster as dg

from alpaca_improved_pipelines.defs.market_data.partitions import trading_sessions

market_data_job = dg.define_asset_job(
    "market_data_job",
    selection=dg.AssetSelection.groups("market_data", "features"),
    partitions_def=trading_sessions,
    description="Bars for the universe, quality gates, then features, for the selected sessions.",
)
