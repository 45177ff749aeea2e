"""What the demo prints when it is done: what was built and where to look."""

from __future__ import annotations

import datetime as dt

from rich.console import Console
from rich.table import Table

from alpaca_improved_pipelines.settings import Settings
from contracts import paths
from research import lakehouse


def print_report(settings: Settings, first: dt.date, last: dt.date, console: Console) -> None:
    """Row counts per view, a sample query, and how to open the UIs."""
    con = lakehouse.connect(settings.home)
    table = Table(title="lake views")
    for col in ("view", "rows", "symbols / families", "first session", "last session"):
        table.add_column(col)
    for view in lakehouse.available_views(settings.home):
        cols = {r[0] for r in con.execute(f"DESCRIBE {view}").fetchall()}
        key = next((c for c in ("symbol", "underlying", "family") if c in cols), None)
        start = "session" if "session" in cols else ("start" if "start" in cols else None)
        end = "session" if "session" in cols else ("end" if "end" in cols else None)
        key_sql = f"count(DISTINCT {key})" if key else "NULL"
        lo_sql = f'min("{start}")' if start else "NULL"
        hi_sql = f'max("{end}")' if end else "NULL"
        row = con.execute(f"SELECT count(*), {key_sql}, {lo_sql}, {hi_sql} FROM {view}").fetchone()
        rows, keys, lo, hi = row if row else (0, None, None, None)
        table.add_row(
            view, f"{rows:,}", str(keys if keys is not None else ""), str(lo or ""), str(hi or "")
        )
    console.print(table)
    _print_leaderboard(settings, console)
    home = settings.home.resolve()
    console.print(f"""
[bold]Where to look[/bold]
  lake (Parquet):   {paths.lake_dir(home)}
  Data Docs (GX):   {home / "data_docs" / "<table>" / "index.html"}
  Dagster UI:       make ui      -> http://127.0.0.1:3000  (runs, partitions, checks, metadata)
  MLflow UI:        make mlflow  -> http://127.0.0.1:5000  (sweeps, variants, plots, trades)
  experiments:      .venv/bin/alpaca-improved experiments compare --experiment ma_crossover
  SQL:              .venv/bin/alpaca-improved sql "SELECT * FROM indicators_1d LIMIT 5"
  notebook:         from research import lakehouse; con = lakehouse.connect(); con.sql("...").pl()
""")


def _print_leaderboard(settings: Settings, console: Console) -> None:
    if "backtest_runs" not in lakehouse.available_views(settings.home):
        return
    from alpaca_improved_pipelines.defs.research.leaderboard import leaderboard_frame

    board = leaderboard_frame(settings.home)
    table = Table(title="leaderboard (best variant per family, by Deflated Sharpe)")
    cols = ["family", "params", "sharpe_ratio", "dsr", "n_trials", "oos_sharpe", "max_drawdown"]
    for col in cols:
        table.add_column(col)
    for row in board.iter_rows(named=True):
        table.add_row(*[_cell(row[c]) for c in cols])
    console.print(table)


def _cell(value: object, width: int = 48) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"
