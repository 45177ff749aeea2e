"""A real PostgreSQL server for the test session (Debian's PostgreSQL 15, run as a non-root user).

``initdb`` and ``postgres`` refuse to run as root, and CI runs the tests as root: the server then
runs as the ``postgres`` system user (created when absent) through ``runuser``, with its data
directory and unix-socket directory in a fresh temp dir chowned to it. It listens on 127.0.0.1
at a free port with password (SCRAM) authentication, so a wrong password really fails. One server
per test session (each pytest-xdist worker starts its own, in its own dir at its own port);
``postgres_url`` gives every test a database of its own.

Registered once through ``pytest_plugins`` in ``tests/conftest.py``. The benchmark starts a server
with ``PostgresServer.start`` directly.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("ALPACA_IMPROVED_PG_BIN", "/usr/lib/postgresql/15/bin"))
RUN_AS = "postgres"  # the system user the server runs as when we are root
SUPERUSER = "alpaca"
# Test speed only (a crash of the test server loses nothing we need); the benchmark keeps them on.
FAST = ("-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", RUN_AS, "--", *cmd] if os.geteuid() == 0 else cmd


def _ensure_server_user() -> None:
    """The ``postgres`` system user exists (root only: Debian's package normally creates it)."""
    if os.geteuid() != 0:
        return
    if subprocess.run(["id", "-u", RUN_AS], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", RUN_AS], check=True)


def missing_reason() -> str | None:
    """Why a server cannot start here (binaries absent), or None."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).exists():
            return (
                f"PostgreSQL server binaries not found ({PG_BIN / tool}): install Debian's "
                "postgresql-15 or set ALPACA_IMPROVED_PG_BIN to their directory"
            )
    return None


@dataclass
class PostgresServer:
    """A running server: its superuser, password and port; ``stop()`` removes everything."""

    root: Path
    port: int
    password: str = field(repr=False)
    user: str = SUPERUSER
    host: str = "127.0.0.1"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, db: str = "postgres", scheme: str = "postgresql") -> str:
        return f"{scheme}://{self.user}:{self.password}@{self.host}:{self.port}/{db}"

    def connect(self, db: str = "postgres"):  # noqa: ANN201 - psycopg2 connection
        import psycopg2

        conn = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=db
        )
        conn.autocommit = True
        return conn

    def create_database(self, name: str) -> str:
        """A new empty database ``name``; returns its plain ``postgresql://`` URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"database name {name!r}: use lower-case letters, digits, _")
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    @classmethod
    def start(cls, fast: bool = True) -> PostgresServer:
        """initdb into a fresh temp dir and start the server (``pg_ctl -w``, ~3 s)."""
        _ensure_server_user()
        root = Path(tempfile.mkdtemp(prefix="alpaca-pg-"))
        server = cls(root=root, port=free_port(), password=secrets.token_urlsafe(16))
        if os.geteuid() == 0:
            shutil.chown(root, RUN_AS)
        server.initdb()
        start = [str(PG_BIN / "pg_ctl"), "-D", str(server.data), "-l", str(root / "log")]
        opts = " ".join(server.options(fast))
        _run(_as_server_user([*start, "-w", "-t", "60", "-o", opts, "start"]), root)
        return server

    def initdb(self) -> None:
        """A new cluster in ``data`` (run as the server user when root; ``root`` must be theirs):
        superuser ``user`` with ``password`` (SCRAM over TCP, trust on the unix socket)."""
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, RUN_AS)
        initdb = [
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
        ]
        _run(_as_server_user(initdb), self.root)
        pwfile.unlink()

    def options(self, fast: bool = True) -> list[str]:
        """The server's options: ``port`` on 127.0.0.1 only, its unix socket in ``root``."""
        opts = [f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-k {self.root}"]
        return [*opts, *FAST] if fast else opts

    def stop(self) -> None:
        stop = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_server_user(stop), capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def _run(cmd: list[str], root: Path) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        log = root / "log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"{cmd[-1]} failed ({out.returncode}): {out.stderr[-2000:]}{tail}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL 15 server for this session (this xdist worker)."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A plain ``postgresql://user:pass@127.0.0.1:port/db`` URL of a fresh database."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40].strip("_")
    return postgres_server.create_database(f"t_{slug}_{secrets.token_hex(4)}")
