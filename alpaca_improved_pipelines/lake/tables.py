"""The lake's table layouts: names, column order and polars dtypes (the storage contract)."""

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
BAR_COLUMNS = list(BAR_SCHEMA)

# Tables written by market-data assets; each is one directory of session=YYYY-MM-DD partitions.
BAR_TABLES = ("stock_bars_1m", "stock_bars_5m", "stock_bars_1h", "stock_bars_1d")


def empty_bars() -> pl.DataFrame:
    """A zero-row frame with the bar schema."""
    return pl.DataFrame(schema=BAR_SCHEMA)
