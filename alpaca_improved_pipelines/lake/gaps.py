"""Gaps against the calendar: missing minutes per symbol-session, and explicit, marked filling."""

from __future__ import annotations

import datetime as dt

import polars as pl

from alpaca_improved_pipelines import calendar as cal


def expected_minutes(session: dt.date) -> pl.Series:
    """Every regular-hours minute start of ``session`` (UTC, ns)."""
    opn, cls = cal.session_open_close(session)
    return pl.datetime_range(
        opn.to_pydatetime(),
        cls.to_pydatetime() - dt.timedelta(minutes=1),
        "1m",
        time_unit="ns",
        time_zone="UTC",
        eager=True,
    ).alias("ts")


def _grid(symbols: list[str], session: dt.date) -> pl.DataFrame:
    return pl.DataFrame({"symbol": symbols}).join(expected_minutes(session).to_frame(), how="cross")


def minute_gaps(frame: pl.DataFrame, session: dt.date, symbols: list[str]) -> pl.DataFrame:
    """Per symbol: missing minute count and the first missing minute, for ``session``."""
    missing = _grid(symbols, session).join(
        frame.select("symbol", "ts"), on=["symbol", "ts"], how="anti"
    )
    return (
        missing.group_by("symbol")
        .agg(pl.len().alias("missing_minutes"), pl.col("ts").min().alias("first_missing"))
        .with_columns(pl.lit(session).alias("session"))
        .sort("symbol")
    )


def fill_minute_gaps(frame: pl.DataFrame, session: dt.date, symbols: list[str]) -> pl.DataFrame:
    """Forward-fill missing minutes with flat zero-volume bars marked ``filled=True``.

    A symbol with no bar at all in the session is left absent (nothing to carry forward).
    """
    grid = _grid(symbols, session)
    out = grid.join(frame, on=["symbol", "ts"], how="left").sort("symbol", "ts")
    filled = pl.col("close").is_null()
    carry = pl.col("close").forward_fill().over("symbol")
    return (
        out.with_columns(filled.alias("_f"))
        .with_columns(
            *[
                pl.when(pl.col("_f")).then(carry).otherwise(pl.col(c)).alias(c)
                for c in ("open", "high", "low", "close")
            ],
            pl.when(pl.col("_f")).then(carry).otherwise(pl.col("vwap")).alias("vwap"),
            pl.when(pl.col("_f")).then(0.0).otherwise(pl.col("volume")).alias("volume"),
            pl.when(pl.col("_f")).then(0).otherwise(pl.col("trade_count")).alias("trade_count"),
            pl.col("filled").fill_null(True),
            pl.col("session").fill_null(session),
            *[
                pl.col(c).forward_fill().backward_fill().over("symbol")
                for c in ("source", "adjustment")
            ],
        )
        .filter(pl.col("close").is_not_null())
        .drop("_f")
        .select(frame.columns)
    )
