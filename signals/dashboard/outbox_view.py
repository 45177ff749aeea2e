"""The outbox's delivery state for the dashboard: counts, the latest rows, the dead letters.

Read-only SQLAlchemy Core over :data:`signals.db.outbox` (SQLite or Postgres alike). A row's
target (a subscriber's chat id) is personal data and is not shown; its subscriber id and plan
are. ``last_error`` is free text from a platform and is scrubbed with every other string of the
state (:mod:`signals.dashboard.redact`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from signals.dashboard.journal_view import file_version
from signals.db import outbox, signal_events
from signals.model import OutboxStatus

RECENT = 20
_ROW_COLUMNS = (
    outbox.c.id, outbox.c.event_id, outbox.c.channel, outbox.c.target_kind, outbox.c.plan_id,
    outbox.c.subscriber_id, outbox.c.status, outbox.c.attempts, outbox.c.not_before,
    outbox.c.next_attempt_at, outbox.c.created_at, outbox.c.sent_at, outbox.c.last_error,
)  # fmt: skip


def _text(value: Any) -> Any:
    if not isinstance(value, datetime):
        return value
    # SQLite hands back the stored UTC time without its zone
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _rows(conn: sa.Connection, where: Any = None) -> list[dict[str, Any]]:
    query = (
        sa.select(*_ROW_COLUMNS, signal_events.c.kind, signal_events.c.deployment_id)
        .select_from(outbox.outerjoin(signal_events, signal_events.c.event_id == outbox.c.event_id))
        .order_by(outbox.c.id.desc())
        .limit(RECENT)
    )
    if where is not None:
        query = query.where(where)
    return [{k: _text(v) for k, v in r._mapping.items()} for r in conn.execute(query)]


class OutboxCounts:
    """Counts by status and by channel and status without grouping the whole table each time.

    A channel never changes once a row is written, so the rows per channel are summed
    incrementally by id; the rows not yet sent (pending, inflight, dead: the few) are grouped
    through the status index; ``sent`` is the rest. On 200,000 rows (SQLite, 2% unsent) this
    took the outbox read from ~140 ms (one GROUP BY channel, status) to ~25 ms. When rows were
    deleted (fewer rows up to the largest id seen than summed), the sums start over.
    """

    _UNSENT = (OutboxStatus.PENDING.value, OutboxStatus.INFLIGHT.value, OutboxStatus.DEAD.value)

    def __init__(self) -> None:
        self.last_id = 0
        self.per_channel: dict[str, int] = {}

    def _add_since(self, conn: sa.Connection) -> None:
        query = (
            sa.select(outbox.c.channel, sa.func.count(), sa.func.max(outbox.c.id))
            .where(outbox.c.id > self.last_id)
            .group_by(outbox.c.channel)
        )
        for channel, n, top in conn.execute(query):
            self.per_channel[channel] = self.per_channel.get(channel, 0) + n
            self.last_id = max(self.last_id, top)

    def read(self, conn: sa.Connection) -> tuple[int, dict[str, int], dict[str, dict[str, int]]]:
        """``(total, by status, by channel and status)`` of the rows up to the largest id seen
        (rows written meanwhile are counted next time)."""
        self._add_since(conn)
        upto = outbox.c.id <= self.last_id
        kept = conn.execute(sa.select(sa.func.count()).where(upto)).scalar_one()
        if kept != sum(self.per_channel.values()):  # rows were deleted: count afresh
            self.last_id, self.per_channel = 0, {}
            self._add_since(conn)
            upto = outbox.c.id <= self.last_id
        total = sum(self.per_channel.values())
        unsent = (
            sa.select(outbox.c.channel, outbox.c.status, sa.func.count())
            .where(outbox.c.status.in_(self._UNSENT), upto)
            .group_by(outbox.c.channel, outbox.c.status)
        )
        by_status = dict.fromkeys((s.value for s in OutboxStatus), 0)
        by_channel = {ch: {"sent": n} for ch, n in self.per_channel.items()}
        for channel, status, n in conn.execute(unsent):
            by_status[status] += n
            counts = by_channel.setdefault(channel, {"sent": 0})
            counts[status] = n
            counts["sent"] -= n
        by_status[OutboxStatus.SENT.value] = total - sum(by_status.values())
        by_channel = {ch: {k: v for k, v in c.items() if v} for ch, c in by_channel.items()}
        return total, by_status, by_channel


def read_outbox(engine: Engine, counts: OutboxCounts | None = None) -> dict[str, Any]:
    """Counts by status and by channel and status, the last rows, and the dead letters."""
    with engine.connect() as conn:
        total, by_status, by_channel = (counts or OutboxCounts()).read(conn)
        return {
            "total": total,
            "by_status": by_status,
            "by_channel": by_channel,
            "recent": _rows(conn),
            "dead_letters": _rows(conn, outbox.c.status == OutboxStatus.DEAD.value),
        }


def outbox_version(engine: Engine) -> Any:
    """A cheap value that changes whenever a row is added or changes state.

    SQLite: the database file and its ``-wal`` (size, mtime, inode). Postgres: the row count,
    the largest id, the attempts and the last send/claim times, in one query.
    """
    if engine.dialect.name == "sqlite" and engine.url.database:
        return file_version(engine.url.database)
    query = sa.select(
        sa.func.count(), sa.func.max(outbox.c.id), sa.func.sum(outbox.c.attempts),
        sa.func.max(outbox.c.sent_at), sa.func.max(outbox.c.claimed_at),
        sa.func.max(outbox.c.next_attempt_at),
        sa.func.count().filter(outbox.c.status == OutboxStatus.DEAD.value),
    )  # fmt: skip
    with engine.connect() as conn:
        return tuple(conn.execute(query).one())
