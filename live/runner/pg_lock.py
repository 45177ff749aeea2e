"""One runner per Postgres journal: a session advisory lock the server drops with its connection.

With ``ALPACA_IMPROVED_DATABASE_URL`` set the journal is a schema in Postgres, possibly shared by
runners on several hosts, so a file lock on one host proves nothing. The runner takes
``pg_try_advisory_lock(hashtextextended('alpaca-improved:runner:<schema>', 0))`` on a connection
of its own, kept open for its whole life, and upserts its holder details into the schema's
``runner_locks`` row under the lock. A second runner on the same journal gets ``false`` at once
and refuses with one line naming the holder. The server releases a session lock when the session
ends, however the runner died (SIGKILL closes its socket at once; a vanished host is found by
the TCP keepalives this connection asks for, about a minute). Like :class:`FileLock`, the lock
belongs to the process: a second runner built in the same process shares it.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from contracts.database import DatabaseUrl
from live.journal.pg import LOCK_TABLE, connect, ensure_schema, scrub
from live.runner.lock import LockState, RunnerLock, RunnerLocked, describe

_HELD: dict[tuple[str, str], list[Any]] = {}  # (url, schema) -> [connection, holders here]
_GUARD = threading.Lock()
_KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 20, "keepalives_interval": 5,
              "keepalives_count": 3}  # fmt: skip


def lock_key(schema: str) -> str:
    """The advisory lock's text key for the journal in ``schema`` (hashed by the server)."""
    return f"alpaca-improved:runner:{schema}"


class PgAdvisoryLock(RunnerLock):
    """The runner lock of a Postgres journal (see the module docstring)."""

    def __init__(self, db: DatabaseUrl, schema: str) -> None:
        self.db, self.schema = db, schema
        self.key = lock_key(schema)
        self._id = (db.redacted(), schema)
        self._mine = False

    def _connect(self) -> Any:
        conn = connect(self.db, self.schema, **_KEEPALIVE)
        with conn.cursor() as cur:  # the server probes a silent client too
            cur.execute(
                "SELECT set_config(k, v, false) FROM (VALUES ('tcp_keepalives_idle', '20'), "
                "('tcp_keepalives_interval', '5'), ('tcp_keepalives_count', '3')) AS s(k, v)"
            )
        return conn

    def acquire(self, details: dict[str, Any]) -> None:
        with _GUARD:
            held = _HELD.get(self._id)
            if held is not None:
                held[1] += 1
                self._mine = True
                return
            conn = self._connect()
            try:
                ensure_schema(conn, self.schema)
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.key,))
                    if not cur.fetchone()[0]:
                        raise RunnerLocked(self._refusal(self._holder(cur)))
                    cur.execute(
                        f"INSERT INTO {LOCK_TABLE}(key, holder) VALUES(%s, %s) ON CONFLICT(key) "
                        "DO UPDATE SET holder=EXCLUDED.holder",
                        (self.key, json.dumps(details, sort_keys=True)),
                    )
            except BaseException:
                conn.close()
                raise
            _HELD[self._id] = [conn, 1]
            self._mine = True

    def _holder(self, cur: Any) -> dict[str, Any] | None:
        cur.execute("SELECT to_regclass(%s)", (f'"{self.schema}".{LOCK_TABLE}',))
        if cur.fetchone()[0] is None:
            return None
        cur.execute(f"SELECT holder FROM {LOCK_TABLE} WHERE key=%s", (self.key,))
        row = cur.fetchone()
        try:
            data = json.loads(row[0]) if row else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _refusal(self, holder: dict[str, Any] | None) -> str:
        pid = holder.get("pid", "?") if holder else "?"
        return (
            f"another live runner holds the journal in schema {self.schema} of "
            f"{self.db.redacted()}: {describe(holder)}. One runner per journal: stop it first "
            f"(alpaca-improved live halt, then kill -TERM {pid} on its host), or give this one "
            "its own ALPACA_IMPROVED_JOURNAL_SCHEMA"
        )

    def release(self) -> None:
        with _GUARD:
            if not self._mine:
                return
            self._mine = False
            held = _HELD.get(self._id)
            if held is None:
                return
            held[1] -= 1
            if held[1] == 0:
                del _HELD[self._id]
                held[0].close()  # ending the session drops the advisory lock

    def check(self) -> None:
        """One round trip on the lock's session; RunnerLocked when the session (and with it the
        lock) is gone: a database restart, a terminated backend, a network partition. Another
        runner may hold the journal by now, so this one must stop before it sends anything."""
        import psycopg2

        with _GUARD:
            held = _HELD.get(self._id) if self._mine else None
        if held is None:
            return
        try:
            with held[0].cursor() as cur:
                cur.execute("SELECT 1")
        except psycopg2.Error as exc:
            raise RunnerLocked(
                f"lost the runner lock on the journal in schema {self.schema} of "
                f"{self.db.redacted()} ({scrub(self.db, exc)}): stopping before anything else is "
                "sent; start the runner again once the database is back (it takes the lock "
                "again or names the runner that holds it)"
            ) from None

    def probe(self) -> LockState:
        conn = connect(self.db, self.schema, readonly=True)
        try:
            with conn.cursor() as cur:
                holder = self._holder(cur)
                if self._id in _HELD:
                    return LockState(True, holder)
                cur.execute(
                    "SELECT pg_try_advisory_lock_shared(hashtextextended(%s, 0))", (self.key,)
                )
                free = bool(cur.fetchone()[0])
                if free:
                    cur.execute(
                        "SELECT pg_advisory_unlock_shared(hashtextextended(%s, 0))", (self.key,)
                    )
        finally:
            conn.close()
        return LockState(not free, holder)
