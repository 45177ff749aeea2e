"""Who may see a plan's signals right now: one rule, used by the fan-out, the access reconciler,
the bots' ``/status`` and the dashboard.

A subscription entitles its subscriber when its status is ``active`` or ``trialing``, or when it
is ``past_due`` and the grace period (the plan's ``grace_days`` from ``past_due_since``) has not
run out. Every other status (``canceled``, ``unpaid``, ``incomplete``, ``paused`` ...) does not.
A subscriber who blocked the bot stays entitled (payment is not ours to revoke) but gets no DMs.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from signals.db import plans as plans_table
from signals.db import subscribers, subscriptions
from signals.model import ENTITLED_STATUSES, Plan, SubscriptionStatus, Tier


def grace_until(
    status: str, past_due_since: dt.datetime | None, grace_days: int
) -> dt.datetime | None:
    """End of the grace period of a ``past_due`` subscription (None for any other status)."""
    if status != SubscriptionStatus.PAST_DUE or past_due_since is None:
        return None
    return _utc(past_due_since) + dt.timedelta(days=grace_days)


def is_entitled(
    status: str, past_due_since: dt.datetime | None, grace_days: int, now: dt.datetime
) -> bool:
    """The entitlement rule (module docstring)."""
    if status in ENTITLED_STATUSES:
        return True
    until = grace_until(status, past_due_since, grace_days)
    return until is not None and _utc(now) < until


@dataclass(frozen=True, slots=True)
class Entitled:
    """An entitled subscriber of a plan, with the addresses the bots need."""

    subscriber_id: str
    telegram_user_id: int | None
    telegram_chat_id: int | None
    discord_user_id: str | None


def plan_from_json(text: str) -> Plan:
    """A :class:`Plan` from its ``plans.plan_json`` column."""
    data = json.loads(text)
    data["tier"] = Tier(**data["tier"])
    return Plan(**data)


def plan_to_json(plan: Plan) -> str:
    return json.dumps(asdict(plan), sort_keys=True)


def load_plans(conn: Connection, active_only: bool = True) -> list[Plan]:
    q = sa.select(plans_table.c.plan_json).order_by(plans_table.c.plan_id)
    if active_only:
        q = q.where(plans_table.c.active.is_(True))
    return [plan_from_json(r[0]) for r in conn.execute(q)]


def entitled_subscribers(conn: Connection, plan: Plan, now: dt.datetime) -> list[Entitled]:
    """Every subscriber entitled to ``plan`` at ``now`` (ordered by subscriber id)."""
    rows = conn.execute(
        sa.select(
            subscriptions.c.subscriber_id,
            subscriptions.c.status,
            subscriptions.c.past_due_since,
            subscribers.c.telegram_user_id,
            subscribers.c.telegram_chat_id,
            subscribers.c.discord_user_id,
        )
        .join(subscribers, subscribers.c.subscriber_id == subscriptions.c.subscriber_id)
        .where(subscriptions.c.plan_id == plan.plan_id)
        .order_by(subscriptions.c.subscriber_id)
    )
    out: dict[str, Entitled] = {}
    for r in rows:
        if is_entitled(r.status, r.past_due_since, plan.grace_days, now):
            out[r.subscriber_id] = Entitled(
                r.subscriber_id, r.telegram_user_id, r.telegram_chat_id, r.discord_user_id
            )
    return list(out.values())


def _utc(ts: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes for DateTime(timezone=True) columns: they were stored UTC
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
