"""``ALPACA_IMPROVED_DATABASE_URL`` parsing and per-consumer mapping (pure: no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import paths
from contracts.database import (
    DATABASE_ENV,
    PASSWORD_ENV,
    DatabaseUrl,
    database_from_env,
    mlflow_tracking_uri,
    parse_database_url,
    redact,
)
from contracts.errors import ContractError

SECRET = "s3cr3t-p@ss/w:rd"  # characters that must be percent-encoded in a URL
URL = "postgresql://quant:s3cr3t-p%40ss%2Fw%3Ard@db.internal:6543/alpaca"


@pytest.mark.parametrize(
    "scheme", ["postgresql", "postgres", "postgresql+psycopg2"], ids=lambda s: s
)
def test_every_accepted_scheme_parses_to_the_same_database(scheme: str) -> None:
    db = parse_database_url(URL.replace("postgresql", scheme, 1))
    assert (db.username, db.password, db.host, db.port, db.database) == (
        "quant",
        SECRET,
        "db.internal",
        6543,
        "alpaca",
    )


def test_port_defaults_to_5432_and_query_parameters_are_kept() -> None:
    db = parse_database_url("postgres://u:p@h/d?sslmode=require&connect_timeout=3")
    assert db.port == 5432
    assert dict(db.params) == {"sslmode": "require", "connect_timeout": "3"}
    kw = db.libpq_kwargs("mlflow")
    assert kw["sslmode"] == "require" and kw["connect_timeout"] == "3"
    assert kw["options"] == "-csearch_path=mlflow"


def test_mlflow_gets_psycopg2_and_its_own_schema() -> None:
    """A bare postgresql:// would select psycopg 3 under SQLAlchemy 2.1 (not installed)."""
    uri = parse_database_url(URL).sqlalchemy_url("mlflow")
    assert uri.startswith("postgresql+psycopg2://quant:")
    assert uri.endswith("@db.internal:6543/alpaca?options=-csearch_path%3Dmlflow")
    from sqlalchemy.engine import make_url

    parsed = make_url(uri)  # the password survives the round trip through SQLAlchemy
    assert parsed.password == SECRET and parsed.drivername == "postgresql+psycopg2"
    assert parsed.query["options"] == "-csearch_path=mlflow"


def test_user_options_are_kept_after_the_search_path() -> None:
    db = parse_database_url("postgresql://u:p@h/d?options=-cstatement_timeout%3D5000")
    assert db.search_path_params("dagster")["options"] == (
        "-csearch_path=dagster -cstatement_timeout=5000"
    )


def test_dagster_block_names_the_password_variable_never_the_password() -> None:
    block = parse_database_url(URL).dagster_storage()
    pg = block["postgres"]["postgres_db"]  # type: ignore[index]
    assert pg["password"] == {"env": PASSWORD_ENV}
    assert pg["scheme"] == "postgresql+psycopg2"
    assert pg["params"] == {"options": "-csearch_path=dagster"}
    assert (pg["hostname"], pg["port"], pg["username"], pg["db_name"]) == (
        "db.internal",
        6543,
        "quant",
        "alpaca",
    )
    assert SECRET not in repr(block)


def test_repr_str_and_redacted_hide_the_password() -> None:
    db = parse_database_url(URL)
    for text in (repr(db), str(db), db.redacted(), f"{db}"):
        assert SECRET not in text and "s3cr3t" not in text
    assert db.redacted() == "postgresql://quant:***@db.internal:6543/alpaca"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("mysql://u:hunter22222@h/d", "not postgresql://"),
        ("postgresql://u:hunter22222@/d", "names no host"),
        ("postgresql://u:hunter22222@h", "names no database"),
        ("postgresql://u:hunter22222@h/", "names no database"),
        ("postgresql://:hunter22222@h/d", "names no user"),
        ("postgresql://u:hunter22222@h:notaport/d", "is not a valid URL"),
        ("u:hunter22222@h/d", "not postgresql://"),
    ],
)
def test_a_bad_url_is_one_line_naming_the_variable_and_the_fix(value: str, why: str) -> None:
    with pytest.raises(ContractError) as err:
        database_from_env({DATABASE_ENV: value})
    msg = str(err.value)
    assert msg.startswith(f"{DATABASE_ENV}=") and why in msg
    assert "postgresql://USER:PASSWORD@HOST:5432/DBNAME" in msg and "unset it" in msg
    assert "hunter22222" not in msg and "\n" not in msg


def test_redact_handles_malformed_values() -> None:
    assert redact("postgresql://u:pw12345678@h:x/d") == "postgresql://u:***@h:x/d"
    assert redact("postgresql://u@h/d") == "postgresql://u@h/d"
    assert "pw12345678" not in redact("u:pw12345678@h/d")


def test_unset_or_empty_keeps_the_embedded_sqlite_store(tmp_path: Path) -> None:
    assert database_from_env({}) is None
    assert database_from_env({DATABASE_ENV: "  "}) is None
    assert mlflow_tracking_uri(tmp_path, {}) == paths.mlflow_uri(tmp_path)
    assert mlflow_tracking_uri(tmp_path, {DATABASE_ENV: URL}).startswith("postgresql+psycopg2://")


def test_database_url_is_frozen() -> None:
    db = DatabaseUrl("u", "p", "h", 5432, "d")
    with pytest.raises(AttributeError):
        db.password = "x"  # type: ignore[misc]
