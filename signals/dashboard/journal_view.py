"""The runner's side of the dashboard: one read of the journal, read-only, into plain dicts.

Every section is an explicit allow-list of columns (a manifest's parameters, the broker's ids
of the account, the journal's free-text notes are never copied wholesale), and every list is
capped, so a journal of any size answers in milliseconds. The journal is only ever opened
read-only (:func:`live.journal.pg.open_journal`): the SQLite file with ``mode=ro`` for each read
(see :class:`JournalHandle`), or one read-only Postgres session.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from contracts import paths
from live.journal import orders as jo
from live.journal.pg import configured, journal_where, open_journal
from live.journal.store import Journal, JournalDamaged
from live.runner.control import read_halt, running
from live.runner.status import enforced_limits, journal_status

RECENT_FILLS = 50
MAX_ROWS = 200


def _deployments(j: Journal) -> list[dict[str, Any]]:
    rows = j.rows(
        "SELECT id, strategy, manifest_id, manifest_json, loaded_at, active FROM deployments "
        "ORDER BY id LIMIT ?",
        MAX_ROWS,
    )
    out = []
    for r in rows:
        manifest = json.loads(r["manifest_json"])
        out.append(
            {
                "id": r["id"],
                "strategy": r["strategy"],
                "manifest_id": r["manifest_id"],
                "mlflow_run_id": str(manifest.get("mlflow_run_id") or ""),
                "capital": float(manifest.get("capital") or 0.0),
                "loaded_at": r["loaded_at"],
                "active": bool(r["active"]),
            }
        )
    return out


def _open_orders(j: Journal) -> list[dict[str, Any]]:
    return [
        {
            "client_order_id": o.client_order_id,
            "deployment_id": o.deployment_id,
            "status": o.status.value,
            "symbols": " / ".join(leg.symbol for leg in o.intent.legs),
            "side": " / ".join(leg.side.value for leg in o.intent.legs),
            "qty": o.qty,
            "filled_qty": o.filled_qty,
            "limit_price": o.limit_price,
            "created_at": o.created_at.isoformat(),
            "submitted_at": o.submitted_at.isoformat() if o.submitted_at else None,
        }
        for o in jo.open_orders(j)[:MAX_ROWS]
    ]


def _positions(j: Journal) -> list[dict[str, Any]]:
    sql = (
        "SELECT deployment_id, symbol, qty, avg_price, asset_class, updated_at FROM positions "
        "ORDER BY deployment_id, symbol LIMIT ?"
    )
    return [dict(r) for r in j.rows(sql, MAX_ROWS)]


def _fills(j: Journal) -> list[dict[str, Any]]:
    sql = (
        "SELECT exec_id, client_order_id, deployment_id, symbol, asset_class, qty, price, ts, "
        "kind FROM fills ORDER BY rowid DESC LIMIT ?"
    )
    return [dict(r) for r in j.rows(sql, RECENT_FILLS)]


def _risk(j: Journal, home: Path) -> dict[str, Any]:
    status = journal_status(j)
    last = status["last_cycle"] or {}
    return {
        "state": status["state"],
        "reasons": status["reasons"],  # scope -> reason -> state
        "since": status["risk_since"],  # scope -> reason -> {state, at}
        "details": status["reason_details"],  # reason -> the text naming its cause
        "halt_file": read_halt(home) is not None,
        "orders_by_status": status["orders_by_status"],
        "fills_total": status["fills"],
        "last_cycle": {k: last.get(k) for k in ("seq", "started_at", "finished_at", "state",
                                                 "n_intents", "n_submitted", "error")}
        if last else None,
    }  # fmt: skip


class JournalHandle:
    """The journal, read-only: opened for each read on SQLite (a connection opened while no
    ``-wal`` exists is ``immutable`` and would never see the runner's next write), one
    read-only session kept open on Postgres (dropped on any error, reopened next time)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._pg: Journal | None = None

    @contextmanager
    def open(self) -> Iterator[Journal]:
        """The journal (FileNotFoundError when no runner made one, JournalDamaged)."""
        if configured() is None:
            j = open_journal(self.home, readonly=True)
            try:
                yield j
            finally:
                j.close()
            return
        if self._pg is None:
            self._pg = open_journal(self.home, readonly=True)
        try:
            yield self._pg
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._pg is not None:
            pg, self._pg = self._pg, None
            with suppress(Exception):  # a session that already broke
                pg.close()


def read_journal(handle: JournalHandle) -> dict[str, Any]:
    """The journal's sections (``available: false`` and why, when there is none to read)."""
    where = journal_where(handle.home)
    try:
        with handle.open() as j:
            return {
                "available": True,
                "where": where,
                "deployments": _deployments(j),
                "positions": _positions(j),
                "open_orders": _open_orders(j),
                "fills": _fills(j),
                "risk": _risk(j, handle.home),
                "limits": enforced_limits(j),
            }
    except FileNotFoundError:
        return {"available": False, "where": where, "problem": "no journal yet (no runner ran)"}
    except JournalDamaged as exc:
        return {"available": False, "where": where, "problem": str(exc)}


def runner(home: Path) -> dict[str, Any]:
    """Whether a runner holds the data root now, and the last holder (probing takes nothing)."""
    state = running(home)
    return {"running": state.held, "holder": state.describe() if state.holder else None}


def journal_version(handle: JournalHandle) -> Any:
    """A cheap value that changes whenever the journal does.

    SQLite: the size, modification time and inode of the file and its ``-wal`` (every commit
    appends to the WAL; a checkpoint rewrites the file). Postgres: the largest ids and the
    risk meta, in one query on the kept session.
    """
    if configured() is None:
        return file_version(paths.journal_path(handle.home))
    try:
        with handle.open() as j:
            return tuple(j.rows(_PG_VERSION)[0])
    except FileNotFoundError:
        return None


_PG_VERSION = (
    "SELECT (SELECT max(id) FROM order_events), (SELECT count(*) FROM fills), "
    "(SELECT max(seq) FROM cycles), (SELECT max(finished_at) FROM cycles), "
    "(SELECT max(id) FROM commands), (SELECT max(loaded_at) FROM deployments), "
    "(SELECT sum(active) FROM deployments), (SELECT max(updated_at) FROM positions), "
    "(SELECT string_agg(value, '|') FROM meta WHERE key LIKE 'risk_%')"
)


def file_version(path: Path | str) -> tuple[tuple[int, int, int] | None, ...]:
    """Size, modification time (ns) and inode of a SQLite file and of its ``-wal``."""
    out: list[tuple[int, int, int] | None] = []
    for name in (str(path), f"{path}-wal"):
        try:
            st = Path(name).stat()
        except FileNotFoundError:
            out.append(None)
        else:
            out.append((st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)
