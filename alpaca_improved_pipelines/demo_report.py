"""What the demo prints when it is done: what was built and where to look."""

from __future__ import annotations

import datetime as dt

from rich.console import Console
from rich.table import Table

from alpaca_improved_pipelines.settings import Settings
from research import lakehouse


def print_report(settings: Settings, first: dt.date, last: dt.date, console: Console) -> None:
    """Row counts per view, a sample query, and how to open the UIs."""
    con = lakehouse.connect(settings.home)
    table = Table(title="lake views")
    for col in ("view", "rows", "symbols", "first session", "last session"):
        table.add_column(col)
    for view in lakehouse.available_views(settings.home):
        row = con.execute(
            f"SELECT count(*), count(DISTINCT symbol), min(session), max(session) FROM {view}"
        ).fetchone()
        rows, syms, lo, hi = row if row else (0, 0, None, None)
        table.add_row(view, f"{rows:,}", str(syms), str(lo), str(hi))
    console.print(table)
    home = settings.home.resolve()
    console.print(f"""
[bold]Where to look[/bold]
  lake (Parquet):   {home / "lake"}
  Data Docs (GX):   {home / "data_docs" / "<table>" / "index.html"}
  Dagster UI:       make ui   -> http://127.0.0.1:3000  (runs, partitions, checks, metadata)
  SQL:              .venv/bin/alpaca-improved sql \
                      "SELECT symbol, avg(close) FROM stock_bars_1d GROUP BY 1"
  notebook:         from research import lakehouse; con = lakehouse.connect(); con.sql("...").pl()
""")
