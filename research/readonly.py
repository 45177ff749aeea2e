"""The read-only face of the lake's DuckDB connection: one SELECT statement at a time.

DuckDB's own settings confine file access to the lake once the views are made (see
``lakehouse.lock``), but inside the lake they still let ``COPY … TO`` overwrite a partition and
``ATTACH`` create a database file. So every statement is parsed first and only a SELECT runs:
``SELECT``, ``WITH … SELECT``, ``FROM …``, ``VALUES``, ``DESCRIBE``, ``SUMMARIZE``, ``SHOW`` and
``EXPLAIN [ANALYZE] <select>``. Everything else (``COPY``, ``ATTACH``, ``INSTALL``/``LOAD``,
``EXPORT``, ``SET``, ``PRAGMA``, ``CALL``, ``CREATE``, ``INSERT``…) is refused with a message
that names it, and so is a script of several statements.

The check covers SQL text. The relations it returns are DuckDB's own objects: their Python
methods (``write_parquet``, ``to_csv``…) are a notebook author's deliberate calls, not the SQL
that the CLI passes on, so they are not wrapped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from contracts.errors import ContractError
from contracts.lake import Rejected

ALLOWED = "SELECT (WITH … SELECT, FROM …, DESCRIBE, SUMMARIZE, SHOW, EXPLAIN SELECT)"
_EXPLAIN = re.compile(
    r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^)]*\)\s*)?(?P<rest>.*)$", re.I | re.S
)


class QueryRefused(ContractError):
    """The query is not one read-only SELECT statement; the message says what to send instead."""


def checked(con: duckdb.DuckDBPyConnection, query: object) -> Any:
    """The one parsed SELECT statement of ``query``, ready to run on ``con``.

    Raises:
        QueryRefused: ``query`` is empty, holds several statements, or is not a SELECT.
        duckdb.ParserException: ``query`` is not valid SQL.
    """
    if not isinstance(query, str):
        raise QueryRefused(f"a query is SQL text, not {type(query).__name__}")
    statements = con.extract_statements(query)
    if not statements:
        raise QueryRefused(
            "the query is empty; pass one SELECT statement, e.g. "
            '"SELECT * FROM stock_bars_1d LIMIT 5"'
        )
    if len(statements) > 1:
        raise QueryRefused(
            f"the query holds {len(statements)} statements; the lake takes one SELECT "
            "statement at a time (remove the extra ';'-separated statements)"
        )
    statement = statements[0]
    kind = statement.type.name
    if kind == "EXPLAIN":
        match = _EXPLAIN.match(statement.query)
        inner = con.extract_statements(match["rest"]) if match else []
        if len(inner) == 1 and inner[0].type.name == "SELECT":
            return statement
        kind = "EXPLAIN of a statement that is not a SELECT"
    elif kind == "SELECT":
        return statement
    else:
        words = statement.query.split()
        kind = words[0].upper() if words else kind
    raise QueryRefused(
        f"{kind} is refused: the lake is read-only here and takes only {ALLOWED}. "
        "The pipelines write the lake (alpaca-improved backfill, or the Dagster UI)"
    )


class LakeConnection:
    """A DuckDB connection over the lake's views that runs only SELECT statements.

    ``sql``/``query`` return a lazy DuckDB relation (``.pl()``, ``.df()``, ``.fetchall()``,
    ``.limit(n)``…); ``execute`` runs a statement and the ``fetch*`` methods read its result,
    as on a DuckDB connection. ``register`` puts a notebook's DataFrame under a name (DuckDB's
    implicit scan of Python variables is off once file access is locked).

    Attributes:
        lake: the lake directory the views read.
        views: the views made, one per lake table that has data.
        problems: lake paths the views skipped (corrupt files, invalid partition directories,
            strays), each with why and what to do.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        lake: Path,
        views: tuple[str, ...],
        problems: tuple[Rejected, ...],
        before_statement: Callable[[str], None] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._con = con
        self.lake = lake
        self.views = views
        self.problems = problems
        # the lake on S3: a fresh listing of the views a statement names, before it runs
        # (research.lakehouse); on_close releases what the connection holds (its cache links)
        self._before = before_statement or (lambda _query: None)
        self._on_close = on_close

    def sql(self, query: str, *, alias: str = "", params: object = None) -> duckdb.DuckDBPyRelation:
        """A relation over one SELECT statement (``QueryRefused`` for anything else)."""
        statement = checked(self._con, query)
        self._before(query)
        relation = self._con.sql(statement, alias=alias, params=params)
        assert relation is not None  # a SELECT always has a result
        return relation

    query = sql

    def execute(self, query: str, parameters: object = None) -> LakeConnection:
        """Run one SELECT statement; read its result with the ``fetch*`` methods."""
        statement = checked(self._con, query)
        self._before(query)
        self._con.execute(statement, parameters)
        return self

    def fetchall(self) -> list[Any]:
        return self._con.fetchall()

    def fetchone(self) -> Any:
        return self._con.fetchone()

    def fetchmany(self, size: int = 1) -> list[Any]:
        return self._con.fetchmany(size)

    def fetchdf(self) -> Any:
        return self._con.fetchdf()

    df = fetchdf

    def fetchnumpy(self) -> Any:
        return self._con.fetchnumpy()

    def complete(self) -> None:
        """Finish the open result of ``execute`` (DuckDB wants it done before other work)."""
        self._con.complete()

    @property
    def description(self) -> Any:
        return self._con.description

    def view(self, name: str) -> duckdb.DuckDBPyRelation:
        """A relation over one lake view."""
        self._before(name)
        return self._con.view(name)

    table = view

    def register(self, name: str, frame: object) -> LakeConnection:
        """Make a pandas/polars/Arrow frame queryable as ``name`` (in memory, read-only)."""
        self._con.register(name, frame)
        return self

    def unregister(self, name: str) -> LakeConnection:
        self._con.unregister(name)
        return self

    def close(self) -> None:
        self._con.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def __enter__(self) -> LakeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LakeConnection {self.lake} views={list(self.views)} read-only>"
