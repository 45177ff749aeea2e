"""Postgres for the Dagster instance and MLflow, checked at start-up (one URL, one switch).

``contracts.database`` parses the URL and maps it per consumer; this module does the I/O: it
connects once with psycopg2 before any run starts, creates the ``dagster`` and ``mlflow`` schemas,
and renders the ``storage:`` block of ``dagster.yaml``. A bad URL, an unreachable server, a wrong
password or a missing database is one ConfigError naming the variable (password redacted) and the
fix, raised before anything is written. The password reaches Dagster only through the
environment (``ALPACA_IMPROVED_DATABASE_PASSWORD``), never through ``dagster.yaml``.
"""

from __future__ import annotations

import os
import threading

import yaml

from alpaca_improved_pipelines.errors import ConfigError
from contracts.database import (
    DATABASE_ENV,
    PASSWORD_ENV,
    REDACTED,
    SCHEMAS,
    DatabaseUrl,
    database_from_env,
)

_prepared: set[tuple[str, int]] = set()  # (redacted URL, password hash) done in this process
_lock = threading.Lock()


def _reason(db: DatabaseUrl, message: str) -> tuple[str, str]:
    """(what went wrong, what to do) from a libpq error message, password scrubbed."""
    text = " ".join(message.split())
    if db.password:
        text = text.replace(db.password, REDACTED)
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        return "wrong user or password", "check the user and password in the URL"
    if f'database "{db.database.lower()}" does not exist' in low:
        return (
            f"database {db.database!r} does not exist",
            f"create it (createdb {db.database}) or name an existing database",
        )
    if "permission denied" in low:
        return (
            text,
            f"grant the user CREATE on database {db.database!r}, or create the schemas "
            f"{', '.join(SCHEMAS)} with AUTHORIZATION {db.username}",
        )
    if any(s in low for s in ("connection refused", "could not translate", "timeout", "timed out")):
        return (
            f"server unreachable at {db.host}:{db.port}",
            "start PostgreSQL or fix the host and port",
        )
    return text, "fix the URL or the server"


def prepare_database(db: DatabaseUrl) -> None:
    """Connect once and create the consumer schemas; ConfigError (redacted) if that fails."""
    key = (db.redacted(), hash(db.password))
    with _lock:
        if key in _prepared:
            return
        import psycopg2

        try:
            conn = psycopg2.connect(**db.libpq_kwargs())  # type: ignore[arg-type]
            try:
                conn.autocommit = True
                with conn.cursor() as cur:  # schemas a DBA made need no CREATE privilege
                    cur.execute(
                        "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (list(SCHEMAS),)
                    )
                    present = {name for (name,) in cur.fetchall()}
                    for schema in SCHEMAS:
                        if schema not in present:
                            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            finally:
                conn.close()
        except psycopg2.Error as exc:
            what, fix = _reason(db, str(exc))
            raise ConfigError(f"{DATABASE_ENV}={db.redacted()!r}: {what}; {fix}") from None
        _prepared.add(key)


def configured_database() -> DatabaseUrl | None:
    """The database named by the environment, checked and prepared; None when unset.

    Also exports the password as ``ALPACA_IMPROVED_DATABASE_PASSWORD`` for Dagster (this
    process and any it starts, e.g. ``dagster dev`` from ``alpaca-improved ui``).
    """
    db = database_from_env()  # a malformed URL: ContractError, one line, password redacted
    if db is None:
        return None
    prepare_database(db)
    os.environ[PASSWORD_ENV] = db.password
    return db


def storage_yaml(db: DatabaseUrl) -> str:
    """The ``storage:`` block of ``dagster.yaml`` for ``db`` (no password in it)."""
    storage = db.dagster_storage()
    if not db.password:  # an empty {env: ...} is refused by Dagster; trust/peer auth needs none
        del storage["postgres"]["postgres_db"]["password"]  # type: ignore[index]
    header = (
        f"# Postgres from {DATABASE_ENV} (schema dagster); the password is read from "
        f"${PASSWORD_ENV}, which alpaca-improved sets from the URL.\n"
    )
    return header + yaml.safe_dump({"storage": storage}, sort_keys=False)
