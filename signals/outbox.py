"""The durable outbox: one row per (event, recipient, channel), and every state change of a row.

A row's life (:class:`signals.model.OutboxStatus`)::

    pending --claim (committed before the send)--> inflight --send ok--> sent
       ^                                              |  \\--blocked / permanent / exhausted--> dead
       +--- 429 (next_attempt_at = now + retry_after), probe says "not delivered" -----+

The claim selects only ``status = pending AND next_attempt_at <= now AND not_before <= now``
(``next_attempt_at`` starts at ``not_before`` and only grows), so no row is ever claimed before
its tier allows it. On Postgres the claim's row selection is ``FOR UPDATE SKIP LOCKED``: two
dispatchers never take one row; on SQLite one dispatcher per home holds a file lock
(:mod:`signals.dispatcher`). An ``inflight`` row is never re-sent blindly: after a crash (or a
failure that may have reached the platform) it is resolved by the sender's probe.

Every function takes an open SQLAlchemy connection inside the caller's transaction (the tailer
inserts events, rows and its cursor in one), and every timestamp is stored as UTC (SQLite keeps
the wall time as text, so mixing zones would break the ``<=`` comparisons).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from signals.db import chat_state, cursors, outbox, signal_events
from signals.model import (
    Channel,
    EventKind,
    Lineage,
    OutboxStatus,
    SignalEvent,
    TargetKind,
)

PENDING, INFLIGHT = OutboxStatus.PENDING.value, OutboxStatus.INFLIGHT.value
SENT, DEAD = OutboxStatus.SENT.value, OutboxStatus.DEAD.value


def utc(ts: dt.datetime) -> dt.datetime:
    """``ts`` as aware UTC (SQLite hands back naive datetimes that were stored as UTC)."""
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class Row:
    """One claimed (or inspected) outbox row."""

    id: int
    idem_key: str
    event_id: str
    channel: Channel
    target_kind: TargetKind
    target: str
    plan_id: str
    subscriber_id: str | None
    not_before: dt.datetime
    attempts: int
    next_attempt_at: dt.datetime
    claimed_at: dt.datetime | None
    claimed_by: str | None
    created_at: dt.datetime | None = None

    @classmethod
    def of(cls, r: Any) -> Row:
        return cls(
            r.id, r.idem_key, r.event_id, Channel(r.channel), TargetKind(r.target_kind),
            r.target, r.plan_id, r.subscriber_id, utc(r.not_before), int(r.attempts),
            utc(r.next_attempt_at), utc(r.claimed_at) if r.claimed_at else None, r.claimed_by,
            utc(r.created_at) if r.created_at else None,
        )  # fmt: skip


# -- inserts (idempotent) -------------------------------------------------------------------------
def insert_ignore(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows``, skipping any whose unique key exists (SQLite and Postgres alike)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).on_conflict_do_nothing(), list(rows))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).on_conflict_do_nothing(), list(rows))


def event_row(event: SignalEvent, now: dt.datetime) -> dict[str, Any]:
    """The ``signal_events`` row of ``event``."""
    return {
        "event_id": event.event_id, "kind": event.kind.value, "ts": utc(event.ts),
        "deployment_id": event.lineage.deployment_id, "strategy": event.strategy,
        "event_json": json.dumps(event.as_dict(), sort_keys=True), "created_at": utc(now),
    }  # fmt: skip


def event_from_json(text: str) -> SignalEvent:
    """The :class:`SignalEvent` of a ``signal_events.event_json`` value."""
    d = json.loads(text)
    lin = d["lineage"]
    lineage = Lineage(
        lin["deployment_id"], lin.get("manifest_id", ""), lin.get("strategy", ""),
        lin.get("mlflow_run_id", ""), tuple(lin.get("client_order_ids", ())),
    )  # fmt: skip
    ts = dt.datetime.fromisoformat(d["ts"])
    return SignalEvent(
        d["event_id"], EventKind(d["kind"]), utc(ts), lineage, d["title"], d["facts"]
    )


def load_events(conn: Connection, event_ids: Iterable[str]) -> dict[str, SignalEvent]:
    """The stored events of ``event_ids`` (missing ones are absent from the answer)."""
    ids = sorted(set(event_ids))
    if not ids:
        return {}
    q = sa.select(signal_events.c.event_json).where(signal_events.c.event_id.in_(ids))
    return {e.event_id: e for e in (event_from_json(r[0]) for r in conn.execute(q))}


# -- cursors --------------------------------------------------------------------------------------
def get_cursor(conn: Connection, name: str, default: str = "") -> str:
    row = conn.execute(sa.select(cursors.c.value).where(cursors.c.name == name)).first()
    return default if row is None else str(row[0])


def set_cursor(conn: Connection, name: str, value: str) -> None:
    """Upsert a cursor (call it in the transaction that inserts what it covers)."""
    done = conn.execute(sa.update(cursors).where(cursors.c.name == name).values(value=value))
    if done.rowcount == 0:
        conn.execute(sa.insert(cursors).values(name=name, value=value))


# -- claim and resolution -------------------------------------------------------------------------
def claim(conn: Connection, now: dt.datetime, worker: str, limit: int) -> list[Row]:
    """Mark up to ``limit`` due pending rows ``inflight`` for ``worker`` (commit before sending).

    Due means ``next_attempt_at <= now`` *and* ``not_before <= now`` (the tier's rule, checked
    here again so the guarantee does not rest on how ``next_attempt_at`` was computed).
    """
    now = utc(now)
    due = (
        sa.select(outbox.c.id)
        .where(
            outbox.c.status == PENDING,
            outbox.c.next_attempt_at <= now,
            outbox.c.not_before <= now,
        )
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # Postgres; SQLite has one dispatcher (file lock)
    )
    stmt = (
        sa.update(outbox)
        .where(outbox.c.id.in_(due.scalar_subquery()))
        .values(status=INFLIGHT, claimed_at=now, claimed_by=worker)
        .returning(*outbox.c)
    )
    rows = [Row.of(r) for r in conn.execute(stmt)]
    rows.sort(key=lambda r: (r.next_attempt_at, r.id))
    return rows


def drop_lapsed(conn: Connection, worker: str, rows: Sequence[Row], now: dt.datetime) -> set[int]:
    """Dead-letter claimed DMs whose subscriber is no longer entitled to the row's plan (a
    delayed tier's DM, or one that waited on retries, checked again when it is due); returns
    their ids. Rows fanned out in the last minute were checked at fan-out and are not re-read."""
    from signals.db import subscriptions
    from signals.entitlements import is_entitled, load_plans

    stale = utc(now) - dt.timedelta(seconds=60)
    dms = [r for r in rows if r.subscriber_id and r.created_at is not None and r.created_at < stale]
    if not dms:
        return set()
    grace = {p.plan_id: p.grace_days for p in load_plans(conn, active_only=False)}
    pairs = {(r.subscriber_id, r.plan_id) for r in dms}
    q = sa.select(subscriptions).where(
        sa.tuple_(subscriptions.c.subscriber_id, subscriptions.c.plan_id).in_(list(pairs))
    )
    ok = {(s.subscriber_id, s.plan_id) for s in conn.execute(q)
          if is_entitled(s.status, s.past_due_since, grace.get(s.plan_id, 0), now)}  # fmt: skip
    dropped = set()
    for r in dms:
        if (r.subscriber_id, r.plan_id) not in ok:
            dead_letter(conn, worker, r, f"skipped: {r.subscriber_id} no longer entitled to "
                                         f"{r.plan_id} when the message was due")  # fmt: skip
            dropped.add(r.id)
    return dropped


def _guard(worker: str) -> Any:
    """Only the claimant may resolve its inflight row (a lease steal changes ``claimed_by``)."""
    return sa.and_(
        outbox.c.id == sa.bindparam("b_id"),
        outbox.c.status == INFLIGHT,
        outbox.c.claimed_by == worker,
    )


def record_sent(
    conn: Connection, worker: str, results: Sequence[tuple[Row, str, str]], now: dt.datetime
) -> int:
    """Record ``(row, message_id, payload_hash)`` sends and the chats' last message ids.

    Returns how many rows changed (a row stolen by a lease-expired probe is left alone)."""
    if not results:
        return 0
    stmt = (
        sa.update(outbox)
        .where(_guard(worker))
        .values(
            status=SENT,
            message_id=sa.bindparam("b_mid"),
            payload_hash=sa.bindparam("b_hash"),
            sent_at=utc(now),
            last_error="",
        )  # fmt: skip
    )
    params = [{"b_id": r.id, "b_mid": mid, "b_hash": h} for r, mid, h in results]
    changed = conn.execute(stmt, params).rowcount
    last: dict[tuple[str, str], str] = {}
    for r, mid, _ in results:
        key = (r.channel.value, r.target)
        last[key] = later_id(last.get(key), mid)
    set_last_message_ids(conn, last)
    return int(changed)


def later_id(a: str | None, b: str) -> str:
    """The later of two message ids (numeric ids compare as numbers, Telegram's and Discord's)."""
    if a is None:
        return b
    if a.isdigit() and b.isdigit():
        return a if int(a) >= int(b) else b
    return b


def set_last_message_ids(conn: Connection, last: Mapping[tuple[str, str], str]) -> None:
    """Upsert ``chat_state.last_message_id`` per (channel, target), never moving it back."""
    if not last:
        return
    keys = list(last)
    q = sa.select(chat_state.c.channel, chat_state.c.target, chat_state.c.last_message_id).where(
        sa.tuple_(chat_state.c.channel, chat_state.c.target).in_(keys)
    )
    have = {(r.channel, r.target): r.last_message_id for r in conn.execute(q)}
    new = [{"channel": c, "target": t, "last_message_id": m} for (c, t), m in last.items()
           if (c, t) not in have]  # fmt: skip
    insert_ignore(conn, chat_state, new)
    upd = [{"b_c": c, "b_t": t, "b_m": later_id(have[(c, t)], m)} for (c, t), m in last.items()
           if (c, t) in have]  # fmt: skip
    if upd:
        conn.execute(
            sa.update(chat_state)
            .where(chat_state.c.channel == sa.bindparam("b_c"))
            .where(chat_state.c.target == sa.bindparam("b_t"))
            .values(last_message_id=sa.bindparam("b_m")),
            upd,
        )


def reschedule(
    conn: Connection, worker: str, row: Row, next_at: dt.datetime, *, status: str = PENDING,
    error: str = "", attempt: bool = False,
) -> bool:  # fmt: skip
    """Put an inflight row back (``pending``, or ``inflight`` awaiting a probe) due at
    ``next_at``; ``attempt`` counts a failed delivery attempt."""
    values: dict[str, Any] = {
        "status": status,
        "next_attempt_at": utc(max(next_at, row.not_before)),
    }
    if error:
        values["last_error"] = error[:500]
    if attempt:
        values["attempts"] = outbox.c.attempts + 1
    done = conn.execute(sa.update(outbox).where(_guard(worker)).values(**values), {"b_id": row.id})
    return bool(done.rowcount)


def release(conn: Connection, worker: str, rows: Sequence[tuple[Row, dt.datetime]]) -> None:
    """Hand claimed rows back unsent (a paused or full lane), due again at the given times."""
    if rows:
        conn.execute(
            sa.update(outbox).where(_guard(worker)).values(
                status=PENDING, next_attempt_at=sa.bindparam("b_next")
            ),
            [{"b_id": r.id, "b_next": utc(max(t, r.not_before))} for r, t in rows],
        )  # fmt: skip


def dead_letter(
    conn: Connection, worker: str, row: Row, reason: str, blocked_at: Any = None
) -> None:
    """Dead-letter a row with its reason; ``blocked_at`` also marks the chat blocked."""
    conn.execute(
        sa.update(outbox).where(_guard(worker)).values(status=DEAD, last_error=reason[:500]),
        {"b_id": row.id},
    )
    if blocked_at is not None:
        _chat_upsert(conn, row.channel.value, row.target, blocked_at=utc(blocked_at))


def migrate(conn: Connection, worker: str, row: Row, new_target: str) -> None:
    """Telegram moved a group to a supergroup: re-address this row and every unsent row to the
    old chat, remember the move, and make this row due at once."""
    old = row.target
    conn.execute(
        sa.update(outbox).where(_guard(worker)).values(status=PENDING, target=new_target),
        {"b_id": row.id},
    )
    conn.execute(
        sa.update(outbox)
        .where(outbox.c.channel == row.channel.value, outbox.c.target == old)
        .where(outbox.c.status == PENDING)
        .values(target=new_target)
    )
    _chat_upsert(conn, row.channel.value, old, migrated_to=new_target)


def _chat_upsert(conn: Connection, channel: str, target: str, **values: Any) -> None:
    key = sa.and_(chat_state.c.channel == channel, chat_state.c.target == target)
    if conn.execute(sa.update(chat_state).where(key).values(**values)).rowcount == 0:
        insert_ignore(conn, chat_state, [{"channel": channel, "target": target, **values}])
        conn.execute(sa.update(chat_state).where(key).values(**values))


def chat_states(conn: Connection, channel: str) -> dict[str, Any]:
    """``target -> chat_state row`` of one channel (migrations, blocks, last message ids)."""
    q = sa.select(chat_state).where(chat_state.c.channel == channel)
    return {r.target: r for r in conn.execute(q)}


def last_message_id(conn: Connection, channel: str, target: str) -> str | None:
    q = sa.select(chat_state.c.last_message_id).where(
        chat_state.c.channel == channel, chat_state.c.target == target
    )
    row = conn.execute(q).first()
    return None if row is None else row[0]


# -- in-flight recovery ---------------------------------------------------------------------------
def probe_candidates(
    conn: Connection, worker: str, now: dt.datetime, lease: float, exclude: Iterable[int],
    limit: int = 200,
) -> list[Row]:  # fmt: skip
    """Inflight rows to resolve by a probe, taken over by ``worker``: its own rows it is not
    sending now (a previous life of this worker, or a send that failed ambiguously) and anyone's
    rows claimed longer than ``lease`` seconds ago; each only once due (``next_attempt_at``)."""
    now = utc(now)
    stale = now - dt.timedelta(seconds=lease)
    skip = list(exclude)
    q = (
        sa.select(outbox)
        .where(outbox.c.status == INFLIGHT, outbox.c.next_attempt_at <= now)
        .where(sa.or_(outbox.c.claimed_by == worker, outbox.c.claimed_at <= stale))
        .order_by(outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if skip:
        q = q.where(outbox.c.id.not_in(skip))
    rows = [Row.of(r) for r in conn.execute(q)]
    taken = []
    for r in rows:  # take each over atomically (another dispatcher may race for a stale one)
        done = conn.execute(
            sa.update(outbox)
            .where(outbox.c.id == r.id, outbox.c.status == INFLIGHT)
            .where(outbox.c.claimed_at == r.claimed_at if r.claimed_at else sa.true())
            .values(claimed_by=worker, claimed_at=now)
        )
        if done.rowcount:
            taken.append(r)
    return taken


def due_summary(conn: Connection, worker: str, now: dt.datetime) -> dt.datetime | None:
    """The earliest ``next_attempt_at`` of a pending row or of this worker's inflight rows."""
    q = sa.select(sa.func.min(outbox.c.next_attempt_at)).where(
        sa.or_(
            outbox.c.status == PENDING,
            sa.and_(outbox.c.status == INFLIGHT, outbox.c.claimed_by == worker),
        )
    )
    value = conn.execute(q).scalar()
    return None if value is None else utc(value)


def requeue_dead(
    conn: Connection, now: dt.datetime, ids: Iterable[int] | None = None, reason_like: str = ""
) -> int:
    """The dead-letter runbook's last step: put dead rows back to ``pending`` (attempts reset,
    due now, never before ``not_before``), all of them or ``ids``, optionally only those whose
    ``last_error`` contains ``reason_like``. Returns how many. Blocked chats stay blocked:
    clear ``chat_state.blocked_at`` first if the user unblocked the bot."""
    now = utc(now)
    q = sa.update(outbox).where(outbox.c.status == DEAD)
    if ids is not None:
        q = q.where(outbox.c.id.in_(list(ids)))
    if reason_like:
        q = q.where(outbox.c.last_error.contains(reason_like, autoescape=True))
    due = sa.case((outbox.c.not_before > now, outbox.c.not_before), else_=now)
    done = conn.execute(q.values(status=PENDING, attempts=0, next_attempt_at=due))
    return int(done.rowcount)


def counts(conn: Connection) -> dict[str, int]:
    """Rows per status (the dashboard's delivery state)."""
    q = sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
    return {str(s): int(n) for s, n in conn.execute(q)}
