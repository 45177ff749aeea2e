"""Options assets: end-of-day chains with our IV and Greeks, and the fitted volatility surface."""

import time
from functools import partial

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.defs.market_data.assets import BACKFILL, RETRY
from alpaca_improved_pipelines.defs.market_data.bars import _metadata, _table_md, guard_lineage
from alpaca_improved_pipelines.defs.market_data.partitions import keys_to_sessions, trading_sessions
from alpaca_improved_pipelines.defs.options import work
from alpaca_improved_pipelines.defs.options.chains import agreement, status_counts
from alpaca_improved_pipelines.defs.options.config import ChainConfig, SurfaceConfig
from alpaca_improved_pipelines.defs.options.plots import smile_plot_markdown, surface_plot_markdown
from alpaca_improved_pipelines.defs.resources import VENDOR_POOL
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.sources import MarketDataSource
from alpaca_improved_pipelines.resources.universe import UniverseResource

COMMON = dict(
    partitions_def=trading_sessions,
    group_name="options",
    retry_policy=RETRY,
    backfill_policy=BACKFILL,
    kinds={"parquet", "polars"},
)


@dg.asset(pool=VENDOR_POOL, **COMMON)  # type: ignore[call-overload]
def option_chains(
    context: dg.AssetExecutionContext,
    config: ChainConfig,
    source: MarketDataSource,
    lake: LakeResource,
    universe: UniverseResource,
) -> dg.MaterializeResult:
    """End-of-day option chains with mid, time to expiry, our IV and Greeks, vendor values."""
    started = time.perf_counter()
    underlyings, written, chain = work.chains_for_run(
        config,
        source,
        lake,
        universe,
        keys_to_sessions(context.partition_keys),
        partial(guard_lineage, context, lake),
    )
    rep = underlyings[0]
    meta = _metadata("option_chains", written, underlyings, smile_plot_markdown(chain, rep))
    agree = agreement(chain)
    meta["contracts_last_session"] = chain.height
    meta["iv_status"] = dg.MetadataValue.md(_table_md(status_counts(chain)))
    meta["vendor_agreement"] = dg.MetadataValue.md(
        "median and p90 of |ours - vendor| on the last session (vendor theta x365, vega and "
        "rho x100 into our units)\n\n" + _table_md(agree)
        if agree
        else "the source sent no vendor IV or Greeks"
    )
    meta["rate_curve"] = dg.MetadataValue.json([p.model_dump() for p in config.rate_curve])
    meta["elapsed_s"] = round(time.perf_counter() - started, 3)
    return dg.MaterializeResult(
        metadata=meta, data_version=dg.DataVersion(str(meta["data_version"]))
    )


@dg.asset(deps=[option_chains], **COMMON)  # type: ignore[call-overload]
def vol_surface(
    context: dg.AssetExecutionContext, config: SurfaceConfig, lake: LakeResource
) -> dg.MaterializeResult:
    """SVI smiles per expiry, ATM term structure, 25-delta RR/BF, IV rank and percentile."""
    started = time.perf_counter()
    written, surface = work.surfaces_for_run(
        config,
        lake,
        keys_to_sessions(context.partition_keys),
        partial(guard_lineage, context, lake),
    )
    underlyings = tuple(sorted(surface["underlying"].unique().to_list()))
    plot = surface_plot_markdown(surface, underlyings[0]) if underlyings else ""
    meta = _metadata("vol_surface", written, underlyings, plot)
    summary = (
        surface.group_by("underlying")
        .agg(
            pl.col("atm_iv_30d").first().round(4),
            pl.col("rr25_30d").first().round(4),
            pl.col("bf25_30d").first().round(4),
            pl.col("iv_rank").first().round(3),
            pl.col("iv_percentile").first().round(3),
            pl.col("iv_rank_status").first(),
            (pl.col("fit_status") == "ok").sum().alias("fitted"),
            pl.len().alias("expiries"),
            pl.col("fit_rmse").max().round(5).alias("max_fit_rmse"),
        )
        .sort("underlying")
    )
    meta["summary_last_session"] = dg.MetadataValue.md(_table_md(summary.to_dicts()))
    meta["elapsed_s"] = round(time.perf_counter() - started, 3)
    return dg.MaterializeResult(
        metadata=meta, data_version=dg.DataVersion(str(meta["data_version"]))
    )
