"""The books the stress assets revalue, and the market they are valued in, read from the lake.

A book is the live deployments' positions (``live_positions``, its latest session) or, when no
live book exists, the last session's holdings of each options family's latest backtest (its
MLflow run's ``positions.parquet``). Options are priced with the latest ``option_chains``
session's own IV, rate and dividend yield per contract, spots are that session's closes.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.tracking.mlflow_store import Tracker
from contracts import paths
from research import lakehouse
from strategies import occ
from strategies.stress import StressBook

OCC_PATTERN = r"^[A-Z0-9]{1,6}\d{6}[CP]\d{8}$"


@dataclass(frozen=True, slots=True)
class BookPositions:
    """One book's positions: ``name`` (deployment or family), ``source`` (live / backtest)."""

    name: str
    source: str
    positions: pl.DataFrame  # symbol, qty


def live_books(lake: Path) -> list[BookPositions]:
    """Each deployment's positions at the latest ``live_positions`` session (none -> [])."""
    sessions = storage.existing_sessions(lake, "live_positions")
    if not sessions:
        return []
    frame = storage.read_file(lake, storage.partition_path(lake, "live_positions", sessions[-1]))
    frame = frame.filter(pl.col("qty") != 0)
    return [
        BookPositions(str(dep), "live", part.select("symbol", "qty"))
        for (dep,), part in frame.partition_by("deployment_id", as_dict=True).items()
    ]


def latest_backtests(home: Path) -> list[tuple[str, str]]:
    """``(family, mlflow_run_id)`` of each family's latest, best-ranked ``backtest_runs`` row."""
    con = lakehouse.connect(home, warn=False)
    if "backtest_runs" not in con.views:
        return []
    return con.sql(
        "SELECT family, mlflow_run_id FROM backtest_runs WHERE mlflow_run_id IS NOT NULL "
        'QUALIFY row_number() OVER (PARTITION BY family ORDER BY "end" DESC, rank) = 1 '
        "ORDER BY family"
    ).fetchall()


def backtest_books(home: Path, tracker: Tracker) -> list[BookPositions]:
    """The last session's holdings of each family's latest backtest that logged positions."""
    rows = latest_backtests(home)
    books = []
    with tempfile.TemporaryDirectory() as tmp:
        for family, run_id in rows:
            names = {a.path for a in tracker.client.list_artifacts(run_id)}
            if "positions.parquet" not in names:
                continue  # a signal family's run: no option book
            local = tracker.client.download_artifacts(run_id, "positions.parquet", tmp)
            held = pl.read_parquet(local)
            if held.is_empty():
                continue
            last = held.filter(pl.col("session") == pl.col("session").max())
            last = last.filter(pl.col("qty") != 0).select("symbol", "qty")
            if last.height:
                books.append(BookPositions(str(family), "backtest", last))
    return books


def candidate_books(home: Path, tracker: Tracker) -> list[BookPositions]:
    """Live books when any deployment holds something, else the latest backtests' books.

    Raises:
        ConfigError: when there is neither (names the assets to materialize).
    """
    books = live_books(paths.lake_dir(home)) or backtest_books(home, tracker)
    if not books:
        raise ConfigError(
            "no book to stress: live_positions is empty and no options backtest logged "
            "positions; materialize live_results (after a live run) or options_backtest first"
        )
    return books


@dataclass(frozen=True, slots=True)
class Market:
    """The valuation session's chains (held contracts) and closes."""

    session: dt.date
    chain: pl.DataFrame
    closes: dict[str, float]
    version: str = ""  # content hash of the session's option_chains partition


def market_at(lake: Path, symbols: set[str]) -> Market:
    """The latest ``option_chains`` session: its rows for ``symbols``' contracts, and closes."""
    sessions = storage.existing_sessions(lake, "option_chains")
    if not sessions:
        raise ConfigError(
            "no option_chains in the lake to price the book; materialize option_chains first"
        )
    session = dt.date.fromisoformat(sessions[-1])
    path = storage.partition_path(lake, "option_chains", session)
    chain = storage.read_file(lake, path)
    bars = storage.read_partitions(lake, "stock_bars_1d", [session], BAR_SCHEMA)
    closes = dict(zip(bars["symbol"].to_list(), bars["close"].to_list(), strict=True))
    underlyings = {occ.parse(s).root if _is_option(s) else s for s in symbols}
    for u in underlyings - set(closes):
        row = chain.filter(pl.col("underlying") == u).head(1)
        if row.height:  # the chain's underlying price when the bars lack the symbol
            closes[u] = float(row["underlying_price"][0])
    chain = chain.filter(pl.col("contract").str.strip_prefix("O:").is_in(list(symbols)))
    return Market(session, chain, closes, storage.digest(lake, path))


def _is_option(symbol: str) -> bool:
    return bool(pl.Series([symbol]).str.contains(OCC_PATTERN)[0])


def stress_book(positions: pl.DataFrame, market: Market) -> tuple[StressBook, list[str]]:
    """The :class:`StressBook` of ``positions`` valued in ``market``, and the symbols left out
    (no chain row or no IV at the valuation session, or no close)."""
    chain = market.chain.with_columns(pl.col("contract").str.strip_prefix("O:"))
    chain = chain.filter(pl.col("iv").is_not_null() & pl.col("iv").is_not_nan())
    options = positions.filter(pl.col("symbol").str.contains(OCC_PATTERN))
    priced = options.join(chain, left_on="symbol", right_on="contract", how="inner")
    priced = priced.filter(pl.col("underlying").is_in(list(market.closes)))
    stock = positions.filter(~pl.col("symbol").str.contains(OCC_PATTERN))
    stock = stock.filter(pl.col("symbol").is_in(list(market.closes)))
    left_out = sorted(
        set(positions["symbol"].to_list())
        - set(priced["symbol"].to_list())
        - set(stock["symbol"].to_list())
    )
    used = set(priced["underlying"].to_list()) | set(stock["symbol"].to_list())
    book = StressBook.from_arrays(
        {u: market.closes[u] for u in sorted(used)},
        priced["underlying"].to_numpy(),
        (priced["right"] == "C").to_numpy(),
        priced["strike"].to_numpy(),
        np.maximum(priced["t_years"].to_numpy(), 0.0),
        priced["iv"].to_numpy(),
        priced["qty"].to_numpy() * 100.0,
        rate=priced["rate"].to_numpy(),
        div=priced["dividend_yield"].to_numpy(),
        stock=dict(zip(stock["symbol"].to_list(), stock["qty"].to_list(), strict=True)),
    )
    return book, left_out
