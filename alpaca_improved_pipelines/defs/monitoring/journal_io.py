"""Read the live runner's SQLite journal (read-only) into frames, and derive daily P&L."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import polars as pl

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import storage


def journal_path(home: Path) -> Path:
    return home / "live" / "journal.sqlite"


def read_table(home: Path, table: str) -> pl.DataFrame:
    """One journal table, read through a read-only connection (never blocks the runner)."""
    path = journal_path(home)
    if not path.exists():
        raise ConfigError(f"no live journal at {path}; run `alpaca-improved live run` first")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        cur = con.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names only
        cols = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        con.close()
    return pl.DataFrame(rows, schema=cols, orient="row", infer_schema_length=None)


def fills_with_session(fills: pl.DataFrame) -> pl.DataFrame:
    """Fills with the NYSE session of their New York timestamp."""
    if fills.is_empty():
        return fills.with_columns(pl.lit(None, pl.Date).alias("session"))
    return fills.with_columns(
        pl.col("ts").str.to_datetime(time_zone="UTC").alias("ts")
    ).with_columns(
        pl.col("ts")
        .dt.convert_time_zone("America/New_York")
        .dt.date()
        # a fill stamped on a non-session day (e.g. an after-hours flatten) books to the next one
        .map_elements(_session_on_or_after, return_dtype=pl.Date)
        .alias("session")
    )


def _session_on_or_after(day: dt.date) -> dt.date:
    return day if cal.is_session(day) else cal.next_session(day)


def option_marks(home: Path, since: str) -> pl.DataFrame:
    """``symbol, session, close``: each archived option contract's mid from ``option_chains``
    sessions on or after ``since`` (empty when no chains were archived)."""
    lake = home / "lake"
    days = [d for d in storage.existing_sessions(lake, "option_chains") if d >= since]
    frames = [
        pl.read_parquet(
            storage.partition_path(lake, "option_chains", d), columns=["contract", "mid"]
        )
        .drop_nulls()
        .select(
            pl.col("contract").alias("symbol"),
            pl.lit(dt.date.fromisoformat(d)).alias("session"),
            pl.col("mid").cast(pl.Float64).alias("close"),
        )
        for d in days
    ]
    schema = {"symbol": pl.String, "session": pl.Date, "close": pl.Float64}
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def daily_pnl(fills: pl.DataFrame, closes: pl.DataFrame) -> pl.DataFrame:
    """Per deployment and session: position value at the close, cash flow, and P&L.

    ``closes`` has ``symbol, session, close``: equity closes and option mids (contracts by OCC
    symbol). Options count 100 shares per contract. A session without a mark carries the last
    one; a position never marked is valued at its last fill price (assignments, exercises and
    expiries are fills too, so a settled contract leaves the book at its settlement price).
    """
    if fills.is_empty():
        return pl.DataFrame(
            schema={
                "deployment_id": pl.String,
                "session": pl.Date,
                "market_value": pl.Float64,
                "cash_flow": pl.Float64,
                "pnl": pl.Float64,
            }
        )
    first_fill: dt.date = fills.select(pl.col("session").min()).item()
    last_fill: dt.date = fills.select(pl.col("session").max()).item()
    last_close: dt.date | None = closes.select(pl.col("session").max()).item()
    last = max(last_fill, last_close or last_fill)
    sessions = cal.sessions_between(first_fill, last)
    grid = (
        fills.select("deployment_id", "symbol")
        .unique()
        .join(pl.DataFrame({"session": sessions}), how="cross")
    )
    mult = pl.when(pl.col("asset_class") == "us_option").then(100.0).otherwise(1.0)
    flows = (
        fills.sort("ts")
        .group_by("deployment_id", "symbol", "session")
        .agg(
            pl.col("qty").sum().alias("dq"),
            (-(pl.col("qty") * pl.col("price") * mult)).sum().alias("cf"),
            pl.col("price").last().alias("fill_px"),
            pl.col("asset_class").first(),
        )
    )
    book = (
        grid.join(flows, on=["deployment_id", "symbol", "session"], how="left")
        .with_columns(pl.col("dq", "cf").fill_null(0.0))
        .sort("session")
        .with_columns(
            pl.col("dq").cum_sum().over("deployment_id", "symbol").alias("qty"),
            pl.col("fill_px", "asset_class").forward_fill().over("deployment_id", "symbol"),
        )
        .join(closes.unique(["symbol", "session"]), on=["symbol", "session"], how="left")
        # no mark this session: the last known mark, else the last fill price
        .with_columns(
            pl.coalesce(
                pl.col("close").forward_fill().over("deployment_id", "symbol"), pl.col("fill_px")
            ).alias("mark")
        )
        .with_columns((pl.col("qty") * pl.col("mark") * mult).alias("mv"))
    )
    out = (
        book.group_by("deployment_id", "session")
        .agg(pl.col("mv").sum().alias("market_value"), pl.col("cf").sum().alias("cash_flow"))
        .sort("deployment_id", "session")
    )
    return out.with_columns(
        (
            pl.col("market_value")
            - pl.col("market_value").shift(1).over("deployment_id").fill_null(0.0)
            + pl.col("cash_flow")
        ).alias("pnl")
    )


def live_returns(pnl: pl.DataFrame, capital: float) -> pl.DataFrame:
    """``session, ret``: one deployment's daily P&L over its equity at the previous close
    (``capital`` plus the P&L before that session)."""
    return (
        pnl.sort("session")
        .with_columns(
            (capital + pl.col("pnl").cum_sum().shift(1).fill_null(0.0)).alias("equity_before")
        )
        .select("session", (pl.col("pnl") / pl.col("equity_before")).alias("ret"))
    )
