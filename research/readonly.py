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

With a ``validate`` hook (the lake on S3 with its cache, ``research.lakehouse``) a statement
runs optimistically: its result is computed on the views as they are while the hook checks the
tables it names (their commit markers, a LIST when one changed), and only a result the check
proves current is handed back (else the views are remade and the statement runs again). So only
calls that compute a whole result before returning go that way: ``execute`` and, on a relation
from ``sql``/``view``, ``fetchall``, ``df``, ``pl``, ``fetch_arrow_table``, ``fetchnumpy``,
``to_dicts``… Calls that hand rows over as they are produced (``to_arrow_reader``,
``iter_rows``, ``show``, a lazy ``pl(lazy=True)``, the Arrow stream protocol, and any other
method not known only to build a relation) check first, then run, as every statement does
without the hook.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import duckdb

from contracts.errors import ContractError
from contracts.lake import Rejected

# ``validate(query, run)``: run() on the views as they are, check what ``query`` names meanwhile,
# remake changed views and run() again; returns the result of the run the check validated
Validate = Callable[[str, Callable[[], Any]], Any]

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
    implicit scan of Python variables is off once file access is locked). With ``validate``
    (the lake on S3) the relation is a ``CheckedRelation`` that behaves as DuckDB's own.

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
        validate: Validate | None = None,
    ) -> None:
        self._con = con
        self.lake = lake
        self.views = views
        self.problems = problems
        # the lake on S3: a fresh listing of the views a statement names, before it runs
        # (research.lakehouse); on_close releases what the connection holds (its cache links)
        self._before = before_statement or (lambda _query: None)
        self._on_close = on_close
        # the lake on S3: run a statement and LIST its views at once, keep the validated result
        self._validate = validate

    def sql(self, query: str, *, alias: str = "", params: object = None) -> duckdb.DuckDBPyRelation:
        """A relation over one SELECT statement (``QueryRefused`` for anything else)."""
        statement = checked(self._con, query)
        if self._validate is not None:
            return self._checked(
                query, lambda: self._con.sql(statement, alias=alias, params=params)
            )
        self._before(query)
        relation = self._con.sql(statement, alias=alias, params=params)
        assert relation is not None  # a SELECT always has a result
        return relation

    query = sql

    def execute(self, query: str, parameters: object = None) -> LakeConnection:
        """Run one SELECT statement; read its result with the ``fetch*`` methods."""
        statement = checked(self._con, query)
        if self._validate is not None:  # DuckDB's execute computes the whole result
            self._validate(query, lambda: self._con.execute(statement, parameters))
            return self
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
        if self._validate is not None:
            return self._checked(name, lambda: self._con.view(name))
        self._before(name)
        return self._con.view(name)

    table = view

    def _checked(
        self, query: str, make: Callable[[], duckdb.DuckDBPyRelation | None]
    ) -> duckdb.DuckDBPyRelation:
        """``make()``'s relation, whose results are validated against a LIST of ``query``'s
        views. A statement that cannot even be bound on the views as they are (a column a new
        partition brings) is bound again after a LIST, before its error is reported."""
        try:
            relation = make()
        except duckdb.Error:
            self._before(query)  # remakes the views that changed (a LIST error surfaces here)
            relation = make()
        assert relation is not None and self._validate is not None
        return cast(
            duckdb.DuckDBPyRelation, CheckedRelation(relation, query, self._validate, self._before)
        )

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


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Relation methods that compute the whole result before returning: run optimistically, validated.
_WHOLE = _words(
    "fetchall fetchdf df to_df fetch_df fetchnumpy fetch_arrow_table to_arrow_table pl tf torch "
    "to_dicts materialize"
)
# Relation methods that only build another relation (nothing runs): no LIST, the result wrapped.
_BUILD = _words(
    "aggregate any_value arg_max arg_min avg bit_and bit_or bit_xor bitstring_agg bool_and "
    "bool_or count cross cume_dist dense_rank distinct except_ favg filter first first_value "
    "fsum geomean group_by histogram intersect join lag last last_value lead limit list max "
    "mean median min mode n_tile nth_value offset order percent_rank product project quantile "
    "quantile_cont quantile_disc query rank rank_dense row_number select select_dtypes "
    "select_types set_alias sort std stddev stddev_pop stddev_samp string_agg sum union unique "
    "value_counts var var_pop var_samp variance head rename with_columns drop unnest"
)


class CheckedRelation:
    """A DuckDB relation over the lake's views on S3 whose rows reach the caller only once a
    LIST of those views, begun after the call, shows them current (``LakeConnection._checked``).

    Every attribute is the relation's own; the calls that compute a whole result (``_WHOLE``)
    go through ``validate``, those that stream rows (``to_arrow_reader``, ``iter_rows``…, and
    anything not known to only build a relation) LIST first (``before``) and then run, and
    relations built from this one are checked the same way, over the views either names.
    """

    __slots__ = ("_before", "_query", "_relation", "_validate")

    def __init__(
        self,
        relation: duckdb.DuckDBPyRelation,
        query: str,
        validate: Validate,
        before: Callable[[str], None],
    ) -> None:
        self._relation, self._query = relation, query
        self._validate, self._before = validate, before

    def _wrap(self, value: object, query: str) -> object:
        if isinstance(value, duckdb.DuckDBPyRelation):
            return CheckedRelation(value, query, self._validate, self._before)
        return value

    def _call(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: object, **kwargs: object) -> object:
            # SQL text and other checked relations among the arguments may name more views
            query = " ".join(
                [self._query]
                + [a._query if isinstance(a, CheckedRelation) else str(a) for a in args]
                + [str(v) for v in kwargs.values()]
            )
            args = tuple(_plain(a) for a in args)
            kwargs = {k: _plain(v) for k, v in kwargs.items()}
            if name in _BUILD:
                return self._wrap(method(*args, **kwargs), query)
            if name in _WHOLE and not kwargs.get("lazy"):
                return self._validate(query, lambda: method(*args, **kwargs))
            self._before(query)  # rows may be handed over as they come: LIST first
            return self._wrap(method(*args, **kwargs), query)

        return call

    def __getattr__(self, name: str) -> Any:
        if name == "shape":  # a property that counts the rows
            self._before(self._query)
            return self._relation.shape
        value = getattr(self._relation, name)  # a column (a relation) or metadata
        if callable(value):
            return self._call(name, value)
        return self._wrap(value, self._query)

    def __getitem__(self, key: object) -> Any:
        return self._wrap(self._relation[key], self._query)  # type: ignore[index]

    def __len__(self) -> int:
        self._before(self._query)
        return len(self._relation)

    def __contains__(self, name: object) -> bool:
        return name in self._relation  # type: ignore[operator]

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        self._before(self._query)
        return self._relation.__arrow_c_stream__(requested_schema)

    def __repr__(self) -> str:  # a notebook shows the first rows
        self._before(self._query)
        return repr(self._relation)

    def __str__(self) -> str:
        self._before(self._query)
        return str(self._relation)


def _plain(value: object) -> object:
    """DuckDB's own relation for a checked one (DuckDB's methods take only its own)."""
    return value._relation if isinstance(value, CheckedRelation) else value
