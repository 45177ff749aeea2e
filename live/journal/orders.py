"""Journal methods for decisions, orders, order events, fills, positions and activities."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from live.journal.codec import intent_from_json, intent_to_json, ts_from_text, ts_to_text
from live.orders.reports import ActivityReport, OrderStatus
from strategies.models import OrderIntent

if TYPE_CHECKING:
    from live.book import Ledger
    from live.journal.store import Journal


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One journaled order (an intent's attempt)."""

    client_order_id: str
    intent_id: int
    deployment_id: str
    attempt: int
    broker_id: str | None
    status: OrderStatus
    qty: float
    filled_qty: float
    filled_avg_price: float | None
    limit_price: float | None
    session: str
    created_at: datetime
    submitted_at: datetime | None
    intent: OrderIntent
    decided_at: datetime  # the market time of its decision (the intent's ``decision_ts``)


@dataclass(frozen=True, slots=True)
class FillRow:
    """One booked change of a position: a trade leg or an option activity (signed ``qty``)."""

    exec_id: str
    client_order_id: str | None
    deployment_id: str
    symbol: str
    asset_class: str
    qty: float
    price: float
    ts: datetime
    kind: str = "trade"


_ORDER_SQL = (
    "SELECT o.*, i.intent_json, i.decision_ts FROM orders o JOIN intents i ON i.id = o.intent_id"
)


def _order(row: sqlite3.Row) -> OrderRow:
    return OrderRow(
        row["client_order_id"], row["intent_id"], row["deployment_id"], row["attempt"],
        row["broker_id"], OrderStatus(row["status"]), row["qty"], row["filled_qty"],
        row["filled_avg_price"], row["limit_price"], row["session"],
        ts_from_text(row["created_at"]),
        ts_from_text(row["submitted_at"]) if row["submitted_at"] else None,
        intent_from_json(row["intent_json"]), ts_from_text(row["decision_ts"]),
    )  # fmt: skip


def record_decision(
    j: Journal, dep_id: str, session: str, decision_ts: datetime,
    tickets: Sequence[tuple[int, OrderIntent, str]], now: datetime,
    order_session: str | None = None,
) -> None:  # fmt: skip
    """Journal one decision and its orders (``pending_submit``) in one durable transaction.

    ``session`` keys the decision and its intents (once per deployment); ``order_session``
    (default ``session``) is the data session journaled on its orders, their send window (a
    minute decision is keyed by its minute and sent on the day's data session).
    """
    data_session = order_session or session
    with j.tx() as db:
        db.execute(
            "INSERT INTO decisions VALUES(?,?,?,?)",
            (dep_id, session, ts_to_text(decision_ts), len(tickets)),
        )
        for seq, intent, cid in tickets:
            cur = db.execute(
                "INSERT INTO intents(deployment_id, session, decision_ts, seq, intent_json, "
                "base_cid) VALUES(?,?,?,?,?,?)",
                (dep_id, session, ts_to_text(decision_ts), seq, intent_to_json(intent), cid),
            )
            add_order(
                j,
                int(cur.lastrowid or 0),
                dep_id,
                cid,
                0,
                float(intent.qty),
                intent.limit_price,
                data_session,
                now,
            )


def add_order(
    j: Journal, intent_id: int, dep_id: str, cid: str, attempt: int, qty: float,
    limit_price: float | None, session: str, now: datetime,
    status: OrderStatus = OrderStatus.PENDING_SUBMIT,
) -> None:  # fmt: skip
    """Journal a new order row (an intent's first attempt or a resubmission)."""
    with j.tx() as db:
        db.execute(
            "INSERT INTO orders(client_order_id, intent_id, deployment_id, attempt, status, qty, "
            "limit_price, session, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?)",
            (
                cid,
                intent_id,
                dep_id,
                attempt,
                status.value,
                qty,
                limit_price,
                session,
                ts_to_text(now),
                ts_to_text(now),
            ),
        )
        db.execute(
            "INSERT INTO order_events(client_order_id, ts, source, status) VALUES(?,?,?,?)",
            (cid, ts_to_text(now), "journal", status.value),
        )


def get_order(j: Journal, cid: str) -> OrderRow | None:
    """The journaled order ``cid``."""
    row = j.db.execute(_ORDER_SQL + " WHERE o.client_order_id=?", (cid,)).fetchone()
    return None if row is None else _order(row)


def list_orders(j: Journal, statuses: Iterable[OrderStatus] | None = None) -> list[OrderRow]:
    """Journaled orders, optionally only those in ``statuses``, oldest first."""
    if statuses is None:
        return [_order(r) for r in j.rows(_ORDER_SQL + " ORDER BY o.created_at, o.rowid")]
    values = [s.value for s in statuses]
    marks = ",".join("?" * len(values))
    sql = _ORDER_SQL + f" WHERE o.status IN ({marks}) ORDER BY o.created_at, o.rowid"
    return [_order(r) for r in j.rows(sql, *values)]


def open_orders(j: Journal) -> list[OrderRow]:
    """Orders that are (or may be) live at the broker."""
    return list_orders(j, [s for s in OrderStatus if s.open])


def busy_deployments(j: Journal) -> set[str]:
    """Deployments with an order not yet in a terminal state (they neither decide nor change)."""
    states = [s.value for s in OrderStatus if not s.terminal]
    marks = ",".join("?" * len(states))
    sql = f"SELECT DISTINCT deployment_id FROM orders WHERE status IN ({marks})"
    return {r[0] for r in j.rows(sql, *states)}


def update_order(
    j: Journal, cid: str, now: datetime, source: str, *, status: OrderStatus | None = None,
    filled_qty: float | None = None, avg_price: float | None = None,
    broker_id: str | None = None, submitted_at: datetime | None = None, note: str = "",
) -> None:  # fmt: skip
    """Update an order row and append an order event, atomically."""
    with j.tx() as db:
        db.execute(
            "UPDATE orders SET status=COALESCE(?, status), filled_qty=COALESCE(?, filled_qty), "
            "filled_avg_price=COALESCE(?, filled_avg_price), broker_id=COALESCE(?, broker_id), "
            "submitted_at=COALESCE(?, submitted_at), updated_at=?, note=? "
            "WHERE client_order_id=?",
            (
                status.value if status else None,
                filled_qty,
                avg_price,
                broker_id,
                ts_to_text(submitted_at) if submitted_at else None,
                ts_to_text(now),
                note[:300],
                cid,
            ),
        )
        db.execute(
            "INSERT INTO order_events(client_order_id, ts, source, status, filled_qty, note)"
            " VALUES(?,?,?,?,?,?)",
            (
                cid,
                ts_to_text(now),
                source,
                status.value if status else None,
                filled_qty,
                note[:300],
            ),
        )


def record_fills(j: Journal, fills: Iterable[FillRow]) -> list[FillRow]:
    """Insert fills, ignoring execution ids already booked; returns the new ones."""
    new = []
    with j.tx() as db:
        for f in fills:
            cur = db.execute(
                "INSERT OR IGNORE INTO fills VALUES(?,?,?,?,?,?,?,?,?)",
                (
                    f.exec_id,
                    f.client_order_id,
                    f.deployment_id,
                    f.symbol,
                    f.asset_class,
                    f.qty,
                    f.price,
                    ts_to_text(f.ts),
                    f.kind,
                ),
            )
            if cur.rowcount == 1:
                new.append(f)
    return new


def all_fills(j: Journal) -> list[FillRow]:
    """Every booked fill in booking order."""
    return [
        FillRow(
            r["exec_id"],
            r["client_order_id"],
            r["deployment_id"],
            r["symbol"],
            r["asset_class"],
            r["qty"],
            r["price"],
            ts_from_text(r["ts"]),
            r["kind"],
        )
        for r in j.rows("SELECT * FROM fills ORDER BY rowid")
    ]


def save_positions(
    j: Journal, positions: dict[tuple[str, str], tuple[float, float, str]], now: datetime
) -> None:
    """Replace the positions cache with ``(deployment, symbol) -> (qty, avg, asset_class)``."""
    with j.tx() as db:
        db.execute("DELETE FROM positions")
        db.executemany(
            "INSERT INTO positions VALUES(?,?,?,?,?,?)",
            [(d, s, q, a, c, ts_to_text(now)) for (d, s), (q, a, c) in positions.items() if q != 0],
        )


def upsert_positions(
    j: Journal, ledger: Ledger, keys: Iterable[tuple[str, str]], now: datetime
) -> None:
    """Write the ledger's current quantity for each ``(deployment, symbol)`` key."""
    with j.tx() as db:
        for dep, symbol in keys:
            h = ledger.holdings.get(dep, {}).get(symbol)
            if h is None:
                db.execute(
                    "DELETE FROM positions WHERE deployment_id=? AND symbol=?", (dep, symbol)
                )
            else:
                db.execute(
                    "INSERT OR REPLACE INTO positions VALUES(?,?,?,?,?,?)",
                    (dep, symbol, h.qty, h.avg_price, h.asset_class, ts_to_text(now)),
                )


def saved_positions(j: Journal) -> dict[tuple[str, str], float]:
    """The positions cache as ``(deployment, symbol) -> qty``."""
    return {(r["deployment_id"], r["symbol"]): r["qty"] for r in j.rows("SELECT * FROM positions")}


def record_activity(j: Journal, act: ActivityReport, now: datetime) -> bool:
    """Remember an applied option activity; False if it was applied before."""
    with j.tx() as db:
        cur = db.execute(
            "INSERT OR IGNORE INTO activities VALUES(?,?,?,?,?,?)",
            (
                act.activity_id,
                act.activity_type,
                act.symbol,
                act.qty,
                act.day.isoformat(),
                ts_to_text(now),
            ),
        )
        return cur.rowcount == 1
