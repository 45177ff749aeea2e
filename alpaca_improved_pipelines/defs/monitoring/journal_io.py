"""Read the live runner's journal (read-only; SQLite, or Postgres when configured) into frames,
and derive daily P&L."""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from pathlib import Path

import polars as pl

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import storage
from contracts import paths
from contracts.database import (
    DATABASE_ENV,
    REDACTED,
    DatabaseUrl,
    database_from_env,
    journal_schema,
)
from strategies.accounting import Account, Holding

journal_path = paths.journal_path


def read_table(home: Path, table: str) -> pl.DataFrame:
    """One journal table, read through a read-only connection (never blocks the runner): from
    the Postgres journal's schema when ``ALPACA_IMPROVED_DATABASE_URL`` is set, else the file."""
    db = database_from_env()
    if db is not None:
        cols, rows = _read_postgres(db, journal_schema(), table)
    else:
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


def _read_postgres(db: DatabaseUrl, schema: str, table: str) -> tuple[list[str], list[tuple]]:
    """``(columns, rows)`` of a journal table in ``schema``, SQLite's columns only (the
    ``rowid`` column that orders ``orders`` and ``fills`` there is dropped)."""
    import psycopg2

    try:
        con = psycopg2.connect(**db.libpq_kwargs(schema))  # type: ignore[arg-type]
    except psycopg2.Error as exc:
        text = " ".join(str(exc).split()).replace(db.password or "\0", REDACTED)
        raise ConfigError(
            f"{DATABASE_ENV}={db.redacted()!r}: cannot read the live journal ({text}); start "
            "PostgreSQL or fix the URL"
        ) from None
    try:
        con.set_session(readonly=True, autocommit=True)
        with con.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (f'"{schema}".{table}',))
            if cur.fetchone()[0] is None:
                raise ConfigError(
                    f"no live journal in schema {schema} of {db.redacted()}; run "
                    "`alpaca-improved live run` with the same database first"
                )
            order = " ORDER BY rowid" if table in ("orders", "fills") else ""
            cur.execute(f"SELECT * FROM {table}{order}")  # noqa: S608 - fixed table names only
            names = [d[0] for d in cur.description]
            keep = [i for i, n in enumerate(names) if n != "rowid"]
            rows = [tuple(r[i] for i in keep) for r in cur.fetchall()]
    finally:
        con.close()
    return [names[i] for i in keep], rows


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
    lake = paths.lake_dir(home)
    days = [d for d in storage.existing_sessions(lake, "option_chains") if d >= since]
    frames = [
        storage.read_file(
            lake, storage.partition_path(lake, "option_chains", d), ["contract", "mid"]
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


PNL_SCHEMA = {
    "deployment_id": pl.String,
    "session": pl.Date,
    "market_value": pl.Float64,
    "cash_flow": pl.Float64,
    "pnl": pl.Float64,
    "realized_pnl": pl.Float64,
    "unrealized_pnl": pl.Float64,
    "collateral": pl.Float64,
}


def daily_pnl(fills: pl.DataFrame, closes: pl.DataFrame) -> pl.DataFrame:
    """Per deployment and session: position value at the close, cash flow, and P&L.

    Each deployment's fills are folded in time order through the accounting every book uses
    (:class:`strategies.accounting.Account`: the multiplier, average prices, realized and
    unrealized P&L, collateral), marked each session at ``closes`` (``symbol, session, close``:
    equity closes and option mids by OCC symbol). A session without a mark carries the last one
    (earlier sessions of ``closes`` included); a position never marked is valued at its last fill
    price (assignments, exercises and expiries are fills too, so a settled contract leaves the
    book at its settlement price). ``realized_pnl`` and ``unrealized_pnl`` are cumulative at the
    close; ``collateral`` is what the deployment's short options reserve.
    """
    if fills.is_empty():
        return pl.DataFrame(schema=PNL_SCHEMA)
    first: dt.date = fills.select(pl.col("session").min()).item()
    last_fill: dt.date = fills.select(pl.col("session").max()).item()
    last_close: dt.date | None = closes.select(pl.col("session").max()).item()
    sessions = cal.sessions_between(first, max(last_fill, last_close or last_fill))
    symbols = fills["symbol"].unique()
    marks = (
        closes.filter(pl.col("symbol").is_in(symbols.implode()) & pl.col("close").is_not_null())
        .unique(["symbol", "session"], keep="last", maintain_order=True)
        .sort("session")
    )
    mark_rows = marks.select("session", "symbol", "close").rows()
    by_session: dict[tuple[str, dt.date], list[tuple[str, str, float, float]]] = {}
    for dep, session, symbol, ac, qty, price in (
        fills.sort("ts", maintain_order=True)
        .select("deployment_id", "session", "symbol", "asset_class", "qty", "price")
        .iter_rows()
    ):
        by_session.setdefault((dep, session), []).append((symbol, ac, float(qty), float(price)))
    accounts = {d: Account() for d in sorted(fills["deployment_id"].unique().to_list())}
    last_mark: dict[str, float] = {}  # latest close per symbol so far
    value = dict.fromkeys(accounts, 0.0)
    rows, k = [], 0
    for session in sessions:
        while k < len(mark_rows) and mark_rows[k][0] <= session:
            last_mark[mark_rows[k][1]] = mark_rows[k][2]
            k += 1
        for dep, account in accounts.items():
            cash_before = account.cash
            for symbol, ac, qty, price in by_session.get((dep, session), ()):
                held = account.holdings.get(symbol) or Holding.of(symbol, ac)
                account.trade(held, qty, price)
                account.mark(symbol, price)  # until a close marks it: the last fill price
            for symbol in account.holdings:
                account.mark(symbol, last_mark.get(symbol, math.nan))
            st = account.statement()
            cash_flow = account.cash - cash_before
            rows.append(
                (dep, session, st.market_value, cash_flow, st.market_value - value[dep] + cash_flow,
                 st.realized_pnl, st.unrealized_pnl, st.collateral)
            )  # fmt: skip
            value[dep] = st.market_value
    return pl.DataFrame(rows, schema=PNL_SCHEMA, orient="row").sort("deployment_id", "session")


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
