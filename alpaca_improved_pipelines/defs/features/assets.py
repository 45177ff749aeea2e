"""Feature assets: technical indicators per symbol and session (polars)."""

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.defs.features.indicators import (
    LOOKBACK,
    history_sessions,
    indicators_for,
)
from alpaca_improved_pipelines.defs.market_data.assets import (
    BACKFILL,
    RETRY,
    stock_bars_1d,
    stock_bars_1m,
)
from alpaca_improved_pipelines.defs.market_data.bars import _metadata, guard_lineage
from alpaca_improved_pipelines.defs.market_data.partitions import keys_to_sessions, trading_sessions
from alpaca_improved_pipelines.lake import lineage
from alpaca_improved_pipelines.plots import line_plot_markdown
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.universe import UniverseResource


@dg.asset(
    partitions_def=trading_sessions,
    group_name="features",
    retry_policy=RETRY,
    backfill_policy=BACKFILL,
    kinds={"parquet", "polars"},
    deps=[
        dg.AssetDep(
            stock_bars_1d,
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-(LOOKBACK - 1), allow_nonexistent_upstream_partitions=True
            ),
        ),
        stock_bars_1m,
    ],
)
def indicators_1d(
    context: dg.AssetExecutionContext, lake: LakeResource, universe: UniverseResource
) -> dg.MaterializeResult:
    """Daily SMA, EMA, RSI, MACD, Bollinger, ATR, realized vol, and intraday realized vol."""
    first = trading_sessions.start.date()
    sessions = keys_to_sessions(context.partition_keys)
    by_session = indicators_for(lake, sessions, first, universe.resolve(None))
    planned = {
        s: lineage.indicators(f.get_column("symbol").unique().to_list(), history_sessions(s, first))
        for s, f in by_session.items()
    }
    guard_lineage(context, lake, "indicators_1d", planned)
    with lake.batch():
        written = [
            (s, lake.write("indicators_1d", s, f, planned[s])) for s, f in by_session.items()
        ]
    frames = list(by_session.values())
    symbols = tuple(sorted(frames[-1].get_column("symbol").unique().to_list()))
    rep = pl.concat(frames).filter(pl.col("symbol") == symbols[0])
    plot = line_plot_markdown(rep, "session", "rsi_14", f"{symbols[0]} RSI(14)")
    meta = _metadata("indicators_1d", written, symbols, plot)
    return dg.MaterializeResult(
        metadata=meta, data_version=dg.DataVersion(str(meta["data_version"]))
    )
