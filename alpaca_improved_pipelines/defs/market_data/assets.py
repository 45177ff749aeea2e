"""Market-data assets: 1-minute and daily bars from the configured source, coarser bars derived."""

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.defs.market_data.bars import (
    BarsConfig,
    derive_and_write,
    fetch_and_write,
)
from alpaca_improved_pipelines.defs.market_data.partitions import trading_sessions
from alpaca_improved_pipelines.defs.resources import VENDOR_POOL
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.sources import MarketDataSource
from alpaca_improved_pipelines.resources.universe import UniverseResource

RETRY = dg.RetryPolicy(
    max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
# A long backfill runs in batches of sessions per run, never one process per partition.
BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=60)
COMMON = dict(
    partitions_def=trading_sessions,
    group_name="market_data",
    retry_policy=RETRY,
    backfill_policy=BACKFILL,
    kinds={"parquet", "polars"},
)


@dg.asset(pool=VENDOR_POOL, **COMMON)  # type: ignore[call-overload]
def stock_bars_1m(
    context: dg.AssetExecutionContext,
    config: BarsConfig,
    source: MarketDataSource,
    lake: LakeResource,
    universe: UniverseResource,
) -> dg.MaterializeResult:
    """Regular-hours 1-minute bars for the universe, one Parquet partition per session."""
    return fetch_and_write(context, config, source, lake, universe, "stock_bars_1m", "1Min")


@dg.asset(pool=VENDOR_POOL, **COMMON)  # type: ignore[call-overload]
def stock_bars_1d(
    context: dg.AssetExecutionContext,
    config: BarsConfig,
    source: MarketDataSource,
    lake: LakeResource,
    universe: UniverseResource,
) -> dg.MaterializeResult:
    """Daily bars for the universe, stamped 00:00 New York like the vendors send them."""
    return fetch_and_write(context, config, source, lake, universe, "stock_bars_1d", "1Day")


@dg.asset(deps=[stock_bars_1m], **COMMON)  # type: ignore[call-overload]
def stock_bars_5m(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """5-minute bars resampled from the 1-minute bars of the same session."""
    return derive_and_write(context, lake, "stock_bars_5m", "5m")


@dg.asset(deps=[stock_bars_1m], **COMMON)  # type: ignore[call-overload]
def stock_bars_1h(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Hourly bars (from the 09:30 open) resampled from the 1-minute bars of the same session."""
    return derive_and_write(context, lake, "stock_bars_1h", "1h")


__all__ = ["stock_bars_1m", "stock_bars_1d", "stock_bars_5m", "stock_bars_1h", "pl"]
