"""Query the lakehouse with DuckDB: one in-memory connection with a view per lake table.

DuckDB only reads the Parquet files (``read_parquet(..., hive_partitioning=true)``); it never
holds the only copy of anything and never takes a write lock on a shared database file, so
notebooks, the CLI and concurrent Dagster runs can all query while partitions are being written.

    >>> from research import lakehouse
    >>> con = lakehouse.connect()            # ALPACA_IMPROVED_HOME or ./.alpaca_improved
    >>> con.sql("SELECT symbol, count(*) FROM stock_bars_1d GROUP BY 1").pl()
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

# view name -> lake table directory; a view exists once its table has at least one partition.
VIEWS: dict[str, str] = {
    "stock_bars_1d": "stock_bars_1d",
    "stock_bars_1m": "stock_bars_1m",
    "stock_bars_5m": "stock_bars_5m",
    "stock_bars_1h": "stock_bars_1h",
    "indicators_1d": "indicators_1d",
    "data_quality_anomalies": "data_quality_anomalies",
    "option_chains": "option_chains",
    "vol_surface": "vol_surface",
    "backtest_runs": "backtest_runs",
    "walk_forward": "walk_forward",
    "live_orders": "live_orders",
    "live_fills": "live_fills",
    "live_positions": "live_positions",
    "live_pnl": "live_pnl",
    "live_replay": "live_replay",
}


def default_home() -> Path:
    """The data root: ``ALPACA_IMPROVED_HOME`` or ``./.alpaca_improved``."""
    return Path(os.environ.get("ALPACA_IMPROVED_HOME") or ".alpaca_improved")


# Tables partitioned by something other than the session (research results, per family).
PARTITION_KEY: dict[str, str] = {
    "backtest_runs": "family",
    "sweep_results": "family",
    "walk_forward": "family",
}


def _glob(lake: Path, table: str) -> str:
    key = PARTITION_KEY.get(table, "session")
    return str((lake / table).resolve() / f"{key}=*" / "*.parquet")


def view_sql(lake: Path, view: str) -> str:
    """The ``CREATE VIEW`` statement for one view over the lake."""
    path = _glob(lake, VIEWS[view]).replace("'", "''")
    return (
        f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet('{path}', "
        "hive_partitioning = true, union_by_name = true)"
    )


def available_views(home: Path | None = None) -> list[str]:
    """Views whose lake table has at least one partition file."""
    lake = (home or default_home()) / "lake"
    return [
        v
        for v, t in VIEWS.items()
        if any((lake / t).glob(f"{PARTITION_KEY.get(t, 'session')}=*/*.parquet"))
    ]


def connect(
    home: Path | str | None = None, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view for every lake table that has data.

    Args:
        home: the data root; defaults to ``ALPACA_IMPROVED_HOME`` or ``./.alpaca_improved``.
        threads: DuckDB worker threads (default: DuckDB's own choice).

    Raises:
        FileNotFoundError: the data root does not exist (run ``make demo`` or a backfill first).
    """
    root = Path(home) if home is not None else default_home()
    if not root.exists():
        raise FileNotFoundError(
            f"data root {root.resolve()} does not exist; run `make demo` or "
            "`alpaca-improved backfill` first, or set ALPACA_IMPROVED_HOME"
        )
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    for view in available_views(root):
        con.execute(view_sql(root / "lake", view))
    return con
