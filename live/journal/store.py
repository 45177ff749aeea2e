"""The runner's SQLite journal (WAL, ``synchronous=FULL``): the write-ahead log of everything.

Every order row is written and committed *before* the broker is called, so a crash at any point
leaves either an order we never sent (status ``pending_submit``) or one whose outcome we look up
by its ``client_order_id`` (``submitting`` / ``unknown``). Positions are a cache folded from the
``fills`` table (trades and option activities) and rebuilt at start-up, so a crash between a fill
and its position update loses nothing. See :mod:`live.journal.orders` for the order methods.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from live.errors import LiveError
from live.journal.codec import ts_to_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deployments(
  id TEXT PRIMARY KEY, manifest_id TEXT NOT NULL, strategy TEXT NOT NULL,
  interface_version INTEGER NOT NULL, fingerprint TEXT NOT NULL, manifest_json TEXT NOT NULL,
  loaded_at TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS decisions(
  deployment_id TEXT NOT NULL, session TEXT NOT NULL, decision_ts TEXT NOT NULL,
  n_intents INTEGER NOT NULL, PRIMARY KEY(deployment_id, session));
CREATE TABLE IF NOT EXISTS intents(
  id INTEGER PRIMARY KEY, deployment_id TEXT NOT NULL, session TEXT NOT NULL,
  decision_ts TEXT NOT NULL, seq INTEGER NOT NULL, intent_json TEXT NOT NULL,
  base_cid TEXT NOT NULL UNIQUE, UNIQUE(deployment_id, session, seq));
CREATE TABLE IF NOT EXISTS orders(
  client_order_id TEXT PRIMARY KEY, intent_id INTEGER, deployment_id TEXT NOT NULL,
  attempt INTEGER NOT NULL, broker_id TEXT, status TEXT NOT NULL, qty REAL NOT NULL,
  filled_qty REAL NOT NULL DEFAULT 0, filled_avg_price REAL, limit_price REAL,
  session TEXT NOT NULL, created_at TEXT NOT NULL, submitted_at TEXT, updated_at TEXT NOT NULL,
  note TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS orders_status ON orders(status);
CREATE TABLE IF NOT EXISTS order_events(
  id INTEGER PRIMARY KEY, client_order_id TEXT NOT NULL, ts TEXT NOT NULL, source TEXT NOT NULL,
  status TEXT, filled_qty REAL, note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS fills(
  exec_id TEXT PRIMARY KEY, client_order_id TEXT, deployment_id TEXT NOT NULL,
  symbol TEXT NOT NULL, asset_class TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL,
  ts TEXT NOT NULL, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions(
  deployment_id TEXT NOT NULL, symbol TEXT NOT NULL, qty REAL NOT NULL, avg_price REAL NOT NULL,
  asset_class TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY(deployment_id, symbol));
CREATE TABLE IF NOT EXISTS activities(
  activity_id TEXT PRIMARY KEY, activity_type TEXT NOT NULL, symbol TEXT NOT NULL,
  qty REAL NOT NULL, day TEXT NOT NULL, applied_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cycles(
  seq INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT, state TEXT NOT NULL,
  n_deployments INTEGER NOT NULL DEFAULT 0, n_intents INTEGER NOT NULL DEFAULT 0,
  n_submitted INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS commands(
  id INTEGER PRIMARY KEY, command TEXT NOT NULL, created_at TEXT NOT NULL, processed_at TEXT,
  result TEXT NOT NULL DEFAULT '');
"""
COMMANDS = ("halt", "flatten", "resume")


class JournalDamaged(LiveError):
    """The journal file is not a readable SQLite database (truncated, overwritten, empty).

    The message names the file and the recovery: the broker is the source of truth for orders
    and positions, so a journal moved aside is rebuilt by the start-up reconciliation (orders
    carrying our prefix are adopted, positions compared with the broker's), and the halt file
    keeps the rebuilt runner HALTED until a human resumes it.
    """

    def __init__(self, path: Path, detail: str) -> None:
        self.path, self.detail = path, detail
        home = path.parent.parent
        super().__init__(
            f"the journal {path} is damaged ({detail}). The broker is the source of truth for "
            f"orders and positions: stop the runner, move the journal aside (mv {path} "
            f"{path}.damaged), run `alpaca-improved live halt --home {home}`, then `live run`: "
            "it starts HALTED and rebuilds orders and positions from the broker by "
            "reconciliation; check `live status`, then `live resume`"
        )


def is_damage(exc: BaseException) -> bool:
    """Whether a sqlite error means a damaged file (not a busy lock or a missing table)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and (
        code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
        or type(exc) is sqlite3.DatabaseError
    )


def _read_only_uri(path: Path) -> str:
    """A ``mode=ro`` URI; ``immutable=1`` too when no ``-wal`` file exists (no writer has it
    open and its content is checkpointed), because SQLite would otherwise create ``-wal`` and
    ``-shm`` files beside a WAL database even for a read-only connection."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    return uri if Path(f"{path}-wal").exists() else uri + "&immutable=1"


class Journal:
    """One SQLite journal file; every write happens inside :meth:`tx` and is fsync'ed on commit.

    Args:
        path: The journal file (created with its parent directory unless ``readonly``).
        readonly: Open an existing journal read-only (``mode=ro``): no directory, file, schema,
            ``-wal`` or ``-shm`` is created, and every write fails.

    Raises:
        JournalDamaged: The file exists but is not a sound SQLite database (``quick_check``).
        FileNotFoundError: ``readonly`` and there is no journal at ``path``.
    """

    def __init__(self, path: Path | str, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly and not self.path.is_file():
            raise FileNotFoundError(f"no journal at {self.path}")
        if self.path.is_file() and self.path.stat().st_size == 0:
            raise JournalDamaged(self.path, "the file is empty")
        if not readonly:
            if self.path.is_file():  # damage is found read-only, before anything is written
                Journal(self.path, readonly=True).close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = self._connect()
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise JournalDamaged(self.path, str(exc)) from exc
            raise
        self._depth = 0

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            db = sqlite3.connect(
                _read_only_uri(self.path), uri=True, timeout=30.0, check_same_thread=False
            )
        else:
            db = sqlite3.connect(
                self.path, isolation_level=None, timeout=30.0, check_same_thread=False
            )
        try:
            db.row_factory = sqlite3.Row
            if not self.readonly:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA busy_timeout=30000")
                db.executescript(SCHEMA)
            else:
                check = db.execute("PRAGMA quick_check(1)").fetchone()
                if check is None or check[0] != "ok":
                    detail = check[0] if check else "no answer"
                    raise sqlite3.DatabaseError(f"quick_check: {detail}")
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (nested calls join the outer one); committed durably on exit."""
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")
        finally:
            self._depth = 0

    def rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        """All rows of a read query."""
        return self.db.execute(sql, args).fetchall()

    # -- meta ----------------------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        """A JSON value stored under ``key``."""
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``."""
        with self.tx() as db:
            db.execute(
                "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE "
                "SET value=excluded.value",
                (key, json.dumps(value)),
            )

    # -- deployments ---------------------------------------------------------------------------
    def upsert_deployment(
        self, dep_id: str, manifest: dict[str, Any], fingerprint: str, now: datetime
    ) -> None:
        """Record (or update) a loaded deployment manifest."""
        with self.tx() as db:
            db.execute(
                "INSERT INTO deployments VALUES(?,?,?,?,?,?,?,1) ON CONFLICT(id) DO UPDATE SET "
                "manifest_id=excluded.manifest_id, strategy=excluded.strategy, "
                "interface_version=excluded.interface_version, fingerprint=excluded.fingerprint, "
                "manifest_json=excluded.manifest_json, loaded_at=excluded.loaded_at, active=1",
                (
                    dep_id,
                    manifest.get("manifest_id", ""),
                    manifest["strategy"],
                    int(manifest.get("interface_version", 1)),
                    fingerprint,
                    json.dumps(manifest, sort_keys=True),
                    ts_to_text(now),
                ),
            )

    def deactivate_deployment(self, dep_id: str) -> None:
        """Mark a deployment whose manifest disappeared as inactive."""
        with self.tx() as db:
            db.execute("UPDATE deployments SET active=0 WHERE id=?", (dep_id,))

    # -- decisions -----------------------------------------------------------------------------
    def decided(self, dep_id: str, session: str) -> bool:
        """True once a decision for (deployment, session) is journaled."""
        sql = "SELECT 1 FROM decisions WHERE deployment_id=? AND session=?"
        return self.db.execute(sql, (dep_id, session)).fetchone() is not None

    def decided_set(self, session: str) -> set[str]:
        """Deployments that already decided for ``session``."""
        rows = self.rows("SELECT deployment_id FROM decisions WHERE session=?", session)
        return {r[0] for r in rows}

    # -- cycles, commands ----------------------------------------------------------------------
    def start_cycle(self, now: datetime, state: str) -> int:
        """Open a runner cycle row; returns its sequence number."""
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO cycles(started_at, state) VALUES(?, ?)", (ts_to_text(now), state)
            )
            return int(cur.lastrowid or 0)

    def finish_cycle(
        self, seq: int, now: datetime, state: str, counts: dict[str, int], error: str = ""
    ) -> None:
        """Close a runner cycle row with its counts."""
        with self.tx() as db:
            db.execute(
                "UPDATE cycles SET finished_at=?, state=?, n_deployments=?, n_intents=?, "
                "n_submitted=?, error=? WHERE seq=?",
                (
                    ts_to_text(now),
                    state,
                    counts.get("deployments", 0),
                    counts.get("intents", 0),
                    counts.get("submitted", 0),
                    error[:500],
                    seq,
                ),
            )

    def last_cycle(self) -> dict[str, Any] | None:
        """The most recent runner cycle, as a dict."""
        row = self.db.execute("SELECT * FROM cycles ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else dict(row)

    def enqueue_command(self, command: str, now: datetime) -> int:
        """Queue a control command (``halt``, ``flatten``, ``resume``) for the running runner."""
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}; use one of {COMMANDS}")
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO commands(command, created_at) VALUES(?, ?)", (command, ts_to_text(now))
            )
            return int(cur.lastrowid or 0)

    def pending_commands(self) -> list[sqlite3.Row]:
        """Unprocessed commands, oldest first."""
        return self.rows("SELECT * FROM commands WHERE processed_at IS NULL ORDER BY id")

    def finish_command(self, command_id: int, now: datetime, result: str) -> None:
        """Mark a command processed."""
        with self.tx() as db:
            db.execute(
                "UPDATE commands SET processed_at=?, result=? WHERE id=?",
                (ts_to_text(now), result, command_id),
            )
