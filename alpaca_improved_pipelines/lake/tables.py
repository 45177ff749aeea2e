"""The lake's table layouts: names, column order and polars dtypes (the storage contract)."""

from __future__ import annotations

import polars as pl

# the stock_bars_* layout, shared with the live stream's stream_bars_1m (contracts leaf)
from contracts.lake_columns import BAR_SCHEMA as BAR_SCHEMA

BAR_COLUMNS = list(BAR_SCHEMA)

# Tables written by market-data assets; each is one directory of session=YYYY-MM-DD partitions.
BAR_TABLES = ("stock_bars_1m", "stock_bars_5m", "stock_bars_1h", "stock_bars_1d")


def empty_bars() -> pl.DataFrame:
    """A zero-row frame with the bar schema."""
    return pl.DataFrame(schema=BAR_SCHEMA)


# Raw end-of-day option chain as a source delivers it (one row per contract per session).
# Vendor IV/Greeks are optional (null when the vendor does not send them); our own IV/Greeks are
# computed downstream in the option_chains asset from mid prices.
CHAIN_RAW_SCHEMA: dict[str, pl.DataType] = {
    "contract": pl.String(),  # OCC symbol without prefix, e.g. SPY240426C00555000
    "underlying": pl.String(),
    "session": pl.Date(),
    "expiry": pl.Date(),
    "strike": pl.Float64(),
    "right": pl.String(),  # "C" or "P"
    "bid": pl.Float64(),
    "ask": pl.Float64(),
    "last": pl.Float64(),
    "volume": pl.Float64(),
    "open_interest": pl.Float64(),
    "underlying_price": pl.Float64(),
    "quote_ts": pl.Datetime("ns", "UTC"),
    "vendor_iv": pl.Float64(),
    "vendor_delta": pl.Float64(),
    "vendor_gamma": pl.Float64(),
    "vendor_theta": pl.Float64(),
    "vendor_vega": pl.Float64(),
    "vendor_rho": pl.Float64(),
    "source": pl.String(),
}
CHAIN_RAW_COLUMNS = list(CHAIN_RAW_SCHEMA)
