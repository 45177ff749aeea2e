"""Data contracts: pandera (polars) schemas for every lake table, run in blocking asset checks."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaError, SchemaErrors

from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA

PRICE_COLUMNS = ("open", "high", "low", "close")


def _finite_positive(col: str) -> pa.Column:
    return pa.Column(
        pl.Float64,
        checks=[
            pa.Check(
                lambda d: d.lazyframe.select(pl.col(d.key).is_finite() & (pl.col(d.key) > 0)),
                name=f"{col}_finite_positive",
                error=f"{col} must be finite and > 0",
            )
        ],
        nullable=False,
    )


def _frame_checks(daily: bool) -> list[pa.Check]:
    checks = [
        pa.Check(
            lambda d: d.lazyframe.select(
                (pl.col("low") <= pl.min_horizontal("open", "close"))
                & (pl.max_horizontal("open", "close") <= pl.col("high"))
            ),
            name="ohlc_consistent",
            error="low <= min(open, close) <= max(open, close) <= high",
        ),
        pa.Check(
            lambda d: d.lazyframe.select(
                pl.col("vwap").is_null()
                | (
                    (pl.col("vwap") >= pl.col("low") - 1e-6)
                    & (pl.col("vwap") <= pl.col("high") + 1e-6)
                )
            ),
            name="vwap_within_range",
            error="vwap between low and high",
        ),
        pa.Check(
            lambda d: d.lazyframe.select(pl.struct("symbol", "ts").is_unique()),
            name="unique_symbol_ts",
            error="one bar per (symbol, ts)",
        ),
        pa.Check(
            lambda d: d.lazyframe.select(
                (pl.col("ts").diff().over("symbol") > pl.duration(nanoseconds=0)).fill_null(True)
            ),
            name="ts_strictly_increasing",
            error="ts strictly increasing within each symbol",
        ),
        pa.Check(
            lambda d: d.lazyframe.select(
                pl.col("ts").dt.convert_time_zone("America/New_York").dt.date() == pl.col("session")
            ),
            name="session_matches_ts",
            error="session equals the New York date of ts",
        ),
    ]
    if daily:
        checks.append(
            pa.Check(
                lambda d: d.lazyframe.select(
                    pl.col("ts").dt.convert_time_zone("America/New_York").dt.time()
                    == pl.time(0, 0, 0)
                ),
                name="daily_stamp_midnight_new_york",
                error="daily bars are stamped 00:00 America/New_York",
            )
        )
    return checks


def bar_schema(table: str) -> pa.DataFrameSchema:
    """The pandera schema of a bar table (``stock_bars_1d`` adds the midnight-stamp rule)."""
    cols: dict[str, pa.Column] = {
        "symbol": pa.Column(
            pl.String, pa.Check.str_matches(r"^[A-Z][A-Z0-9.]{0,9}$"), nullable=False
        ),
        "ts": pa.Column(BAR_SCHEMA["ts"], nullable=False),
        "session": pa.Column(pl.Date, nullable=False),
        **{c: _finite_positive(c) for c in PRICE_COLUMNS},
        "volume": pa.Column(pl.Float64, pa.Check.ge(0), nullable=False),
        "vwap": pa.Column(pl.Float64, nullable=True),
        "trade_count": pa.Column(pl.Int64, pa.Check.ge(0), nullable=True),
        "source": pa.Column(pl.String, pa.Check.isin(["synthetic", "alpaca", "polygon"])),
        "adjustment": pa.Column(pl.String, pa.Check.isin(["raw", "split", "dividend", "all"])),
        "filled": pa.Column(pl.Boolean, nullable=False),
    }
    return pa.DataFrameSchema(
        cols,
        checks=_frame_checks(daily=table == "stock_bars_1d"),
        strict=True,
        ordered=True,
        name=table,
    )


def validate(schema: pa.DataFrameSchema, frame: pl.DataFrame) -> pl.DataFrame:
    """Failure cases of ``schema`` on ``frame`` (empty frame when valid); collects every failure."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        return (
            pl.from_pandas(exc.failure_cases.astype(str))
            if hasattr(exc.failure_cases, "astype")
            else pl.DataFrame(exc.failure_cases).cast(pl.String)
        )
    except SchemaError as exc:
        return pl.DataFrame({"check": [str(exc.check)], "failure_case": [str(exc)]})
    return pl.DataFrame()
