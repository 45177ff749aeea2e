"""The read-only commands, ``sql`` and ``experiments``: they create nothing and import no Dagster.

Each bad input is one ``ConfigError`` line that names the input and the fix (exit 2 in the CLI).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from alpaca_improved_pipelines.errors import ConfigError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

FORMATS = ("table", "csv", "json")
BATCH_ROWS = 65_536  # rows per Arrow batch when csv/json stream a result


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}; e.g. --format csv")


def check_positive(value: int, option: str) -> None:
    if value < 1:
        raise ConfigError(f"{option} {value} must be a positive number of rows, e.g. {option} 20")


def run_sql(
    query: str,
    fmt: str = "table",
    limit: int = 50,
    home: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> None:
    """Print the result of one SELECT over the lake views (table: the first ``limit`` rows)."""
    import duckdb

    from research import lakehouse

    out, err = out or sys.stdout, err or sys.stderr
    check_format(fmt)
    check_positive(limit, "--limit")
    if not query.strip():
        raise ConfigError(
            "the query is empty; pass one SELECT statement, e.g. "
            'alpaca-improved sql "SELECT * FROM stock_bars_1d LIMIT 5"'
        )
    con = lakehouse.connect(home, warn=False)
    for problem in con.problems:
        print(f"warning: skipped {problem}", file=err)
    try:
        _print(con.sql(query), fmt, limit, out, err)
    except duckdb.Error as exc:
        raise ConfigError(_failure(con, query, exc)) from None
    finally:
        con.close()


def _print(rel: duckdb.DuckDBPyRelation, fmt: str, limit: int, out: TextIO, err: TextIO) -> None:
    import polars as pl

    if fmt == "table":
        frame = rel.limit(limit + 1).pl()  # the limit runs inside DuckDB: only these rows exist
        with pl.Config(tbl_rows=limit, tbl_cols=-1, tbl_width_chars=200):
            print(frame.head(limit), file=out)
        if frame.height > limit:
            print(f"(first {limit} rows; raise --limit, or --format csv for all)", file=err)
        return
    first = True
    if fmt == "json":
        out.write("[")
    for batch in rel.to_arrow_reader(BATCH_ROWS):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        if fmt == "csv":
            out.write(frame.write_csv(include_header=first))
        elif frame.height:
            out.write(("" if first else ",") + frame.write_json()[1:-1])
        first = False
    if fmt == "csv" and first:  # no batch at all: still print the header
        out.write(rel.limit(0).pl().write_csv())
    if fmt == "json":
        out.write("]\n")


def _failure(con: object, query: str, exc: Exception) -> str:
    import duckdb

    from research import lakehouse

    first = str(exc).splitlines()[0]
    assert isinstance(con, lakehouse.LakeConnection)
    views = ", ".join(con.views) or "none (materialize data first)"
    if isinstance(exc, duckdb.PermissionException):
        return f"query failed: {first}. Queries read only the lake ({con.lake}); views: {views}"
    if isinstance(exc, duckdb.ParserException | duckdb.BinderException | duckdb.CatalogException):
        return f"query failed: {first}. Views available: {views}"
    damaged = lakehouse.damaged_files(con, query)
    if damaged:
        return f"query failed: {first}. Damaged lake file " + "; ".join(map(str, damaged))
    return f"query failed: {first}. Views available: {views}"


def _home(home: Path | None) -> Path:
    from research import lakehouse

    return home if home is not None else lakehouse.default_home()


def experiments_compare(
    experiment: str,
    metric: str = "sharpe_ratio",
    top: int = 10,
    kind: str | None = None,
    fmt: str = "table",
    home: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> pd.DataFrame:
    """Print an experiment's runs with params and metrics, best ``metric`` first."""
    from research import experiments

    out, err = out or sys.stdout, err or sys.stderr
    check_format(fmt)
    check_positive(top, "--top")
    try:
        frame = experiments.compare(experiment, metric=metric, top=top, kind=kind, home=home)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if frame.empty:
        what = f"{kind} runs" if kind else "runs"
        print(f"no {what} in experiment {experiment} yet", file=err)
    if fmt == "csv":
        out.write(frame.to_csv(index=False) if not frame.empty else "")
    elif fmt == "json":
        print(frame.to_json(orient="records"), file=out)
    elif not frame.empty:
        import pandas as pd

        with pd.option_context("display.max_columns", 30, "display.width", 200):
            print(frame.to_string(index=False), file=out)
    return frame


def experiments_list(
    home: Path | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> list[str]:
    """Print the strategy families that have an MLflow experiment."""
    from research import experiments

    out, err = out or sys.stdout, err or sys.stderr
    try:
        names = experiments.list_experiments(home)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not names:
        print(f"no experiments under {_home(home).resolve()} yet; run `make demo`", file=err)
    for name in names:
        print(name, file=out)
    return names
