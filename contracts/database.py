"""``ALPACA_IMPROVED_DATABASE_URL``: the one switch that puts the platform's state on Postgres.

Unset (the default), everything stays embedded: Dagster on SQLite under ``<home>/dagster_home``,
MLflow on ``sqlite:///<home>/mlflow.db``. Set to ``postgresql://user:password@host:port/db``
(``postgres://`` and ``postgresql+psycopg2://`` are accepted too), every consumer uses that one
database, each in a schema of its own, because Dagster and MLflow both own tables named ``runs``
and ``alembic_version``:

    dagster   the Dagster instance (runs, event log, schedules)
    mlflow    MLflow's tracking and model-registry store
    live      the live runner's journal (``ALPACA_IMPROVED_JOURNAL_SCHEMA`` names another, one
              per broker account when several runners share the database)

The URL is mapped per consumer, never handed on as given: under SQLAlchemy 2.1 a bare
``postgresql://`` selects psycopg 3, which is not installed and with which dagster-postgres 0.29
fails (``NOTIFY run_events, $1``), so both get ``postgresql+psycopg2``. The password is never
written to a file or a log: ``repr``, ``str`` and :meth:`DatabaseUrl.redacted` hide it, and
Dagster's ``dagster.yaml`` reads it from :data:`PASSWORD_ENV` (see
``alpaca_improved_pipelines.database``).

Parsing is pure (no driver import, no I/O); connecting and creating the schemas is the caller's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from contracts import paths
from contracts.errors import ContractError

DATABASE_ENV = "ALPACA_IMPROVED_DATABASE_URL"
# Dagster reads the password from this variable ({env: ...} in dagster.yaml); set from the URL.
PASSWORD_ENV = "ALPACA_IMPROVED_DATABASE_PASSWORD"
DAGSTER_SCHEMA = "dagster"
MLFLOW_SCHEMA = "mlflow"
SCHEMAS = (DAGSTER_SCHEMA, MLFLOW_SCHEMA)
JOURNAL_SCHEMA_ENV = "ALPACA_IMPROVED_JOURNAL_SCHEMA"
JOURNAL_SCHEMA = "live"  # the live journal's default schema (the runner creates it)
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")
DRIVER_SCHEME = "postgresql+psycopg2"  # psycopg2-binary is installed; psycopg 3 is not
EXAMPLE = "postgresql://USER:PASSWORD@HOST:5432/DBNAME"
REDACTED = "***"


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A parsed Postgres URL; the password never shows in ``repr``/``str``."""

    username: str
    password: str = field(repr=False)
    host: str
    port: int
    database: str
    # libpq parameters from the query string (sslmode, connect_timeout, ...), in order
    params: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return self.redacted()

    def redacted(self) -> str:
        """``postgresql://user:***@host:port/db?...``: safe to log and to print in errors."""
        auth = f"{quote(self.username, safe='')}:{REDACTED}" if self.password else self.username
        query = f"?{urlencode(self.params)}" if self.params else ""
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.database}{query}"

    def search_path_params(self, schema: str) -> dict[str, str]:
        """The query parameters plus libpq ``options`` selecting ``schema`` (kept first)."""
        params = dict(self.params)
        extra = params.pop("options", "")
        params["options"] = f"-csearch_path={schema} {extra}".strip()
        return params

    def sqlalchemy_url(self, schema: str) -> str:
        """``postgresql+psycopg2://...`` with ``schema`` first on the search path (MLflow)."""
        auth = quote(self.username, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        query = urlencode(self.search_path_params(schema), quote_via=quote)
        return f"{DRIVER_SCHEME}://{auth}@{self.host}:{self.port}/{self.database}?{query}"

    def libpq_kwargs(self, schema: str | None = None) -> dict[str, object]:
        """Keyword arguments for ``psycopg2.connect`` (search path set when ``schema``)."""
        kw: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.username,
            "password": self.password,
            "dbname": self.database,
            **dict(self.params),
        }
        kw.setdefault("connect_timeout", 10)
        if schema:
            kw["options"] = self.search_path_params(schema)["options"]
        return kw

    def dagster_storage(self) -> dict[str, object]:
        """The ``storage: postgres:`` block of ``dagster.yaml`` (password from the environment)."""
        return {
            "postgres": {
                "postgres_db": {
                    "hostname": self.host,
                    "port": self.port,
                    "username": self.username,
                    "password": {"env": PASSWORD_ENV},
                    "db_name": self.database,
                    "scheme": DRIVER_SCHEME,
                    "params": self.search_path_params(DAGSTER_SCHEMA),
                }
            }
        }


def _bad(value: str, why: str, var: str) -> ContractError:
    return ContractError(
        f"{var}={redact(value)!r} {why}; set it to {EXAMPLE} (or unset it to keep the embedded "
        "SQLite stores)"
    )


def redact(value: str) -> str:
    """``value`` with any password in its authority replaced by ``***`` (even if malformed)."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        return REDACTED if ":" in value and "@" in value else value
    authority, slash, tail = rest.partition("/")
    if "@" not in authority:
        return value
    userinfo, _, hostport = authority.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':' + REDACTED if colon else ''}@{hostport}{slash}{tail}"


def parse_database_url(value: str, var: str = DATABASE_ENV) -> DatabaseUrl:
    """Parse a Postgres URL; a ContractError (password redacted) names ``var`` and the fix."""
    value = value.strip()
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise _bad(value, f"is not a valid URL ({redact(str(exc))})", var) from None
    if parts.scheme not in SCHEMES:
        shown = parts.scheme or "no scheme"
        raise _bad(value, f"has {shown}, not postgresql://", var)
    if not parts.hostname:
        raise _bad(value, "names no host", var)
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise _bad(value, "names no database (the path after the host)", var)
    if not parts.username:
        raise _bad(value, "names no user", var)
    if parts.fragment:
        raise _bad(value, "has a #fragment", var)
    return DatabaseUrl(
        username=unquote(parts.username),
        password=unquote(parts.password or ""),
        host=parts.hostname,
        port=port or 5432,
        database=database,
        params=tuple(parse_qsl(parts.query, keep_blank_values=True)),
    )


def database_from_env(environ: Mapping[str, str] | None = None) -> DatabaseUrl | None:
    """The parsed ``ALPACA_IMPROVED_DATABASE_URL``, or None when unset or empty."""
    env = os.environ if environ is None else environ
    raw = (env.get(DATABASE_ENV) or "").strip()
    return parse_database_url(raw) if raw else None


def journal_schema(environ: Mapping[str, str] | None = None) -> str:
    """The live journal's Postgres schema: ``ALPACA_IMPROVED_JOURNAL_SCHEMA`` or ``live``.

    One schema per journal (per broker account): its runner lock is keyed by it. A name that is
    not a plain lower-case identifier, or one another consumer owns, is a ContractError.
    """
    env = os.environ if environ is None else environ
    name = (env.get(JOURNAL_SCHEMA_ENV) or "").strip() or JOURNAL_SCHEMA
    if not _SCHEMA_NAME.fullmatch(name) or name in (*SCHEMAS, "public") or name.startswith("pg_"):
        raise ContractError(
            f"{JOURNAL_SCHEMA_ENV}={name!r} is not a journal schema name; use lower-case letters, "
            f"digits and _ (at most 63, not {', '.join(SCHEMAS)}, public or pg_*), e.g. "
            f"live_paper_1, or unset it for {JOURNAL_SCHEMA!r}"
        )
    return name


def mlflow_tracking_uri(home: Path, environ: Mapping[str, str] | None = None) -> str:
    """MLflow's backend store: Postgres (schema ``mlflow``) when configured, else SQLite."""
    db = database_from_env(environ)
    return db.sqlalchemy_url(MLFLOW_SCHEMA) if db else paths.mlflow_uri(home)
