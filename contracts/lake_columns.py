"""Column layouts of the lake tables that both the pipelines and the live process write.

``BAR_SCHEMA`` is the ``stock_bars_*`` layout (the nightly REST bars, written by the pipelines)
and also the ``stream_bars_1m`` layout (the intraday stream, written by
``live.market.stream.lake_writer``), so a stream bar and a REST bar of the same minute compare
column for column (the ``stream_reconciliation`` asset does). ``OPTION_QUOTE_SCHEMA`` is
``option_quotes_1m``: the last NBBO per option contract and minute.
"""

from __future__ import annotations

import polars as pl

BAR_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "ts": pl.Datetime("ns", "UTC"),
    "session": pl.Date(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "vwap": pl.Float64(),
    "trade_count": pl.Int64(),
    "source": pl.String(),
    "adjustment": pl.String(),
    "filled": pl.Boolean(),
}

OPTION_QUOTE_SCHEMA: dict[str, pl.DataType] = {
    "session": pl.Date(),
    "underlying": pl.String(),
    "symbol": pl.String(),  # OCC, e.g. SPY240426C00555000
    "ts": pl.Datetime("ns", "UTC"),  # the minute's start
    "bid": pl.Float64(),
    "ask": pl.Float64(),
    "bid_size": pl.Float64(),
    "ask_size": pl.Float64(),
    "mid": pl.Float64(),
    "quote_ts": pl.Datetime("ns", "UTC"),  # exchange time of the minute's last quote
}
