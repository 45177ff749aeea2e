"""The live journal on Postgres (``ALPACA_IMPROVED_DATABASE_URL``): one code path, a thin dialect.

Every journal method (:mod:`live.journal.store`, :mod:`live.journal.orders` and their callers)
keeps its SQLite SQL; :class:`PgConnection` stands in for the ``sqlite3`` connection and
translates each statement once (cached): ``?`` parameters become ``%s``, ``BEGIN IMMEDIATE``
becomes ``BEGIN``, ``INSERT OR IGNORE`` becomes ``ON CONFLICT DO NOTHING``, ``INSERT OR
REPLACE`` an upsert on the table's key, and an insert into a table with a generated key gets
``RETURNING`` it (``cursor.lastrowid``). The SQLite path is untouched (no wrapper, no
cost). ``BEGIN`` travels with a transaction's first statement (one round trip less).

The schema is the SQLite one with Postgres types (``BIGSERIAL`` keys, ``DOUBLE PRECISION``,
``TEXT COLLATE "C"`` so ISO timestamps sort bytewise as in SQLite) plus a ``rowid BIGSERIAL``
column on ``orders`` and ``fills``, the insertion order SQLite's ``rowid`` gives. It lives in its
own schema (``live``, or ``ALPACA_IMPROVED_JOURNAL_SCHEMA``: one per broker account when several
runners share the database), created on first use under a transaction-scoped advisory lock.

Semantics are SQLite's: every write happens inside :meth:`Journal.tx` (``BEGIN`` ... ``COMMIT``
on an autocommit connection, so a decision and its orders are one transaction), and commits are
durable before the broker is called (``synchronous_commit=on`` is forced for the session,
whatever the server's default). A lost connection is :class:`JournalUnavailable`, one line with
the password redacted.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from contracts import paths
from contracts.database import (
    DATABASE_ENV,
    REDACTED,
    DatabaseUrl,
    database_from_env,
    journal_schema,
)
from live.errors import LiveError
from live.journal.store import SCHEMA, Journal

# tables whose key the database generates (SQLite's INTEGER PRIMARY KEY): RETURNING it
_SERIAL = {"intents": "id", "cycles": "seq", "commands": "id", "order_events": "id"}
# INSERT OR REPLACE targets: (conflict key, columns replaced)
_REPLACE = {"positions": ("deployment_id, symbol", ("qty", "avg_price", "asset_class",
                                                    "updated_at"))}  # fmt: skip
_INSERT = re.compile(r"^\s*INSERT\s+(?:OR\s+(IGNORE|REPLACE)\s+)?INTO\s+(\w+)", re.IGNORECASE)
_DDL_LOCK = "alpaca-improved:journal-ddl:"
LOCK_TABLE = "runner_locks"


class JournalUnavailable(LiveError):
    """The Postgres journal cannot be reached or used; the message names the URL (redacted)."""


def scrub(db: DatabaseUrl, exc: BaseException) -> str:
    """A driver error as one line, with the password replaced by ``***``."""
    text = " ".join(str(exc).split())
    return text.replace(db.password, REDACTED) if db.password else text


def pg_schema_ddl() -> str:
    """The journal's schema in Postgres types (see the module docstring)."""
    ddl = re.sub(r"\b(id|seq) INTEGER PRIMARY KEY", r"\1 BIGSERIAL PRIMARY KEY", SCHEMA)
    ddl = re.sub(r"\bINTEGER\b", "BIGINT", ddl)
    ddl = re.sub(r"\bREAL\b", "DOUBLE PRECISION", ddl)
    ddl = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', ddl)
    return (
        ddl
        + "ALTER TABLE orders ADD COLUMN IF NOT EXISTS rowid BIGSERIAL;\n"
        + "ALTER TABLE fills ADD COLUMN IF NOT EXISTS rowid BIGSERIAL;\n"
        + f"CREATE TABLE IF NOT EXISTS {LOCK_TABLE}(key TEXT PRIMARY KEY, holder TEXT NOT NULL);\n"
    )


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> tuple[str, bool]:
    """``(Postgres SQL, returns a generated key)`` of one SQLite statement of the journal."""
    head = sql.strip().upper()
    if head == "BEGIN IMMEDIATE":
        return "BEGIN", False
    if head.startswith("PRAGMA"):
        raise ValueError(f"no Postgres equivalent for {sql!r}")
    text = sql.replace("%", "%%").replace("?", "%s")
    m = _INSERT.match(text)
    if m is None:
        return text, False
    verb, table = (m.group(1) or "").upper(), m.group(2)
    text = f"INSERT INTO {table}{text[m.end() :]}"
    if verb == "IGNORE":
        text += " ON CONFLICT DO NOTHING"
    elif verb == "REPLACE":
        if table.lower() not in _REPLACE:
            raise ValueError(f"INSERT OR REPLACE into {table}: no conflict key known")
        key, cols = _REPLACE[table.lower()]
        text += f" ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(
            f"{c}=EXCLUDED.{c}" for c in cols
        )
    pk = _SERIAL.get(table.lower())
    if pk and "RETURNING" not in text.upper():
        return f"{text} RETURNING {pk}", True
    return text, False


class PgCursor:
    """The part of ``sqlite3.Cursor`` the journal uses (rows index by position and by name)."""

    __slots__ = ("_cur", "lastrowid")

    def __init__(self, cur: Any, lastrowid: int | None) -> None:
        self._cur, self.lastrowid = cur, lastrowid

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)

    @property
    def description(self) -> Any:
        return self._cur.description

    def fetchone(self) -> Any:
        return self._cur.fetchone() if self._cur.description else None

    def fetchall(self) -> list[Any]:
        return list(self._cur.fetchall()) if self._cur.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """The part of ``sqlite3.Connection`` the journal uses, on a psycopg2 connection."""

    def __init__(self, conn: Any, db: DatabaseUrl) -> None:
        import psycopg2.extras

        self.conn, self.url = conn, db
        self._factory = psycopg2.extras.DictCursor
        self._begin = False  # BEGIN is sent with the transaction's first statement

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        import psycopg2

        text, returning = translate(sql)
        if text == "BEGIN":
            self._begin = True  # one round trip less per transaction
            return PgCursor(None, None)
        if self._begin:
            self._begin = False
            if text in ("COMMIT", "ROLLBACK"):  # an empty transaction
                return PgCursor(None, None)
            text = "BEGIN; " + text
        try:
            cur = self.conn.cursor(cursor_factory=self._factory)
            cur.execute(text, tuple(params))
            return PgCursor(cur, int(cur.fetchone()[0]) if returning and cur.rowcount else None)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            if text == "ROLLBACK":  # the transaction died with the connection
                return PgCursor(None, None)
            raise JournalUnavailable(
                f"the live journal's database {self.url.redacted()} failed: {scrub(self.url, exc)}"
            ) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.execute(sql, row)

    def close(self) -> None:
        self.conn.close()


def connect(db: DatabaseUrl, schema: str, *, readonly: bool = False, **extra: Any) -> Any:
    """An autocommit psycopg2 connection with ``schema`` on the search path and durable
    commits; JournalUnavailable (one line, password redacted) when it cannot be had."""
    import psycopg2

    kw = db.libpq_kwargs(schema)
    kw["options"] = f"{kw['options']} -csynchronous_commit=on"
    kw.update(extra)
    try:
        conn = psycopg2.connect(**kw)
        conn.set_session(readonly=readonly, autocommit=True)
    except psycopg2.Error as exc:
        raise JournalUnavailable(
            f"{DATABASE_ENV}={db.redacted()!r}: cannot open the live journal (schema {schema}): "
            f"{scrub(db, exc)}; start PostgreSQL or fix the URL, or unset {DATABASE_ENV} to use "
            "the SQLite journal"
        ) from None
    return conn


def ensure_schema(conn: Any, schema: str) -> None:
    """Create ``schema`` and the journal's tables once (concurrent openers serialize)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f'"{schema}".{LOCK_TABLE}',))
        if cur.fetchone()[0] is not None:
            return
        cur.execute("BEGIN")
        try:
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (_DDL_LOCK + schema,)
            )
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            cur.execute(pg_schema_ddl())
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")


def has_journal(conn: Any, schema: str) -> bool:
    """Whether ``schema`` holds a journal (its ``commands`` table)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f'"{schema}".commands',))
        return cur.fetchone()[0] is not None


class PgJournal(Journal):
    """The journal in a Postgres schema; every :class:`Journal` method works unchanged.

    Args:
        db: The database.
        schema: The journal's schema (created with its tables unless ``readonly``).
        readonly: A read-only session (every write fails); FileNotFoundError when the schema
            holds no journal yet, as for a missing SQLite file.
    """

    def __init__(self, db: DatabaseUrl, schema: str, readonly: bool = False) -> None:
        self.url, self.schema, self.readonly = db, schema, readonly
        self.where = f"schema {schema} of {db.redacted()}"
        self.path = Path(f"postgres:{schema}")  # for messages only
        conn = connect(db, schema, readonly=readonly)
        try:
            import psycopg2

            try:
                if readonly and not has_journal(conn, schema):
                    raise FileNotFoundError(f"no journal in {self.where}")
                if not readonly:
                    ensure_schema(conn, schema)
            except psycopg2.Error as exc:
                raise JournalUnavailable(
                    f"the live journal in {self.where} cannot be prepared: {scrub(db, exc)}; "
                    f"grant the user CREATE on the database, or create schema {schema} for it"
                ) from None
        except BaseException:
            conn.close()
            raise
        # duck-typed: the subset of sqlite3.Connection the journal uses
        self.db = cast(sqlite3.Connection, PgConnection(conn, db))
        self._depth = 0


def configured() -> tuple[DatabaseUrl, str] | None:
    """``(database, journal schema)`` when ``ALPACA_IMPROVED_DATABASE_URL`` is set, else None."""
    db = database_from_env()
    return None if db is None else (db, journal_schema())


def open_journal(home: Path, readonly: bool = False) -> Journal:
    """The runner's journal: Postgres when configured, else ``<home>/live/journal.sqlite``."""
    pg = configured()
    if pg is None:
        return Journal(paths.journal_path(home), readonly=readonly)
    return PgJournal(pg[0], pg[1], readonly=readonly)


def journal_where(home: Path) -> str:
    """Where the runner's journal is: its file, or ``schema S of postgresql://u:***@h/db``."""
    pg = configured()
    return str(paths.journal_path(home)) if pg is None else f"schema {pg[1]} of {pg[0].redacted()}"


def journal_exists(home: Path) -> bool:
    """Whether a runner has created its journal (the file, or the tables in the schema)."""
    pg = configured()
    if pg is None:
        return paths.journal_path(home).is_file()
    conn = connect(*pg, readonly=True)
    try:
        return has_journal(conn, pg[1])
    finally:
        conn.close()
