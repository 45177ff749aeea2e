"""Fan an event out into outbox rows: who gets it, on which channel, and not before when.

Each active plan covering the event's strategy posts **once** to its tier's channel(s) (the
Telegram chat, the Discord channel), however many members read it; a ``dm=True`` plan adds one
private message per entitled subscriber with a Telegram chat. An account-wide event (empty
strategy, e.g. a halt of the whole account) concerns every plan.

A subscriber entitled through several plans gets one DM (the recipient key names the subscriber,
not the plan), from the plan whose tier allows it earliest. A chat Telegram migrated is
addressed at its new id; a private chat whose user blocked the bot gets nothing (the
subscription itself is untouched). Rows are inserted with ``insert ... on conflict do nothing`` on
the idempotency key, so fanning the same event out twice (a crash before the cursor moved) adds
nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.engine import Connection

from signals import outbox as ob
from signals.db import outbox as outbox_table
from signals.entitlements import entitled_subscribers, load_plans
from signals.model import (
    Channel,
    OutboxStatus,
    Plan,
    Recipient,
    SignalEvent,
    TargetKind,
    idempotency_key,
)
from signals.tiers import not_before


def recipients(conn: Connection, plan: Plan, now: dt.datetime) -> list[Recipient]:
    """The delivery targets of one plan: its channel posts, then its DMs."""
    out = []
    if plan.telegram_chat_id is not None:
        out.append(
            Recipient(
                Channel.TELEGRAM, str(plan.telegram_chat_id), TargetKind.CHANNEL, plan.plan_id
            )
        )
    if plan.discord_channel_id:
        out.append(
            Recipient(Channel.DISCORD, plan.discord_channel_id, TargetKind.CHANNEL, plan.plan_id)
        )
    if plan.dm:
        for sub in entitled_subscribers(conn, plan, now):
            if sub.telegram_chat_id is not None:
                out.append(
                    Recipient(
                        Channel.TELEGRAM,
                        str(sub.telegram_chat_id),
                        TargetKind.DM,
                        plan.plan_id,
                        sub.subscriber_id,
                    )  # fmt: skip
                )
    return out


def outbox_rows(
    conn: Connection, event: SignalEvent, plans: list[Plan], now: dt.datetime
) -> list[dict[str, Any]]:
    """The outbox rows of ``event`` for ``plans`` (one per distinct idempotency key)."""
    covering = [p for p in plans if not event.strategy or p.covers(event.strategy)]
    timed = sorted(((not_before(event.ts, p.tier), p) for p in covering), key=lambda x: x[0])
    moved = {
        ch: {t: s for t, s in ob.chat_states(conn, ch.value).items()} for ch in Channel
    }  # fmt: skip
    rows: dict[str, dict[str, Any]] = {}
    for nb, plan in timed:  # earliest tier first: it wins a shared recipient
        for rcp in recipients(conn, plan, now):
            state = moved[rcp.channel].get(rcp.target)
            if state is not None and rcp.kind is TargetKind.DM and state.blocked_at is not None:
                continue
            key = idempotency_key(event.event_id, rcp)  # the key of the address we were given
            if key in rows:
                continue
            target = _follow(moved[rcp.channel], rcp.target)
            rows[key] = {
                "idem_key": key, "event_id": event.event_id, "channel": rcp.channel.value,
                "target_kind": rcp.kind.value, "target": target, "plan_id": plan.plan_id,
                "subscriber_id": rcp.subscriber_id, "not_before": nb, "next_attempt_at": nb,
                "status": OutboxStatus.PENDING.value, "attempts": 0, "created_at": ob.utc(now),
                "last_error": "",
            }  # fmt: skip
    return list(rows.values())


def _follow(states: dict[str, Any], target: str) -> str:
    """The chat a target migrated to (following a chain of moves, at most a few hops)."""
    for _ in range(5):
        state = states.get(target)
        if state is None or not state.migrated_to:
            return target
        target = state.migrated_to
    return target


def fan_out(
    conn: Connection, events: list[SignalEvent], now: dt.datetime, plans: list[Plan] | None = None
) -> int:
    """Store ``events`` and their outbox rows (insert-or-ignore) in the caller's transaction;
    returns the number of rows offered. ``plans`` defaults to the active plans."""
    if not events:
        return 0
    plans = load_plans(conn) if plans is None else plans
    ob.insert_ignore(conn, ob.signal_events, [ob.event_row(e, now) for e in events])
    rows = [r for e in events for r in outbox_rows(conn, e, plans, now)]
    for i in range(0, len(rows), 5000):
        ob.insert_ignore(conn, outbox_table, rows[i : i + 5000])
    return len(rows)
