"""Read the live runner's SQLite journal (read-only) into frames, and derive daily P&L."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import polars as pl

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.errors import ConfigError


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


def daily_pnl(fills: pl.DataFrame, closes: pl.DataFrame) -> pl.DataFrame:
    """Per deployment and session: position value at the close, cash flow, and P&L.

    ``closes`` has ``symbol, session, close``. Equity-only (option marks are not in the lake's
    daily bars); option fills count in cash flow only.
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
    flows = fills.group_by("deployment_id", "symbol", "session").agg(
        pl.col("qty").sum().alias("dq"), (-(pl.col("qty") * pl.col("price"))).sum().alias("cf")
    )
    book = (
        grid.join(flows, on=["deployment_id", "symbol", "session"], how="left")
        .with_columns(pl.col("dq", "cf").fill_null(0.0))
        .sort("session")
        .with_columns(pl.col("dq").cum_sum().over("deployment_id", "symbol").alias("qty"))
        .join(closes, on=["symbol", "session"], how="left")
        # a session after the lake's last close is marked at the last known close
        .with_columns(pl.col("close").forward_fill().over("deployment_id", "symbol"))
        .with_columns((pl.col("qty") * pl.col("close")).alias("mv"))
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
