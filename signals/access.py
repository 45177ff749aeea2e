"""The access reconciler: make who is in each paid space equal who is entitled to it.

Desired state: for every active plan with a space on a platform (a Telegram ``telegram_chat_id``,
a Discord ``discord_role_id``) and every subscriber with that platform's user id, access exactly
when :mod:`signals.entitlements` says the subscriber is entitled to the plan now. Actual state:
the ``access`` table (what we granted: ``invited`` with a single-use link, ``granted`` for a
Discord role, ``member`` once joined, ``removed``) checked against the platform itself
(:meth:`AccessPlatform.is_member`), because a member can leave, an admin can remove a role, and
a crash can fall between the platform call and the table write.

Converging is idempotent (every platform call is), so it runs after each payment event for the
one subscriber (:meth:`AccessReconciler.reconcile_subscriber`) and periodically for everyone as
the safety net for a lost webhook or a failed call (:meth:`reconcile_all`, :meth:`run_periodic`).
Each run returns what it changed, for the audit log and the dashboard; invite links are kept out
of ``repr`` and logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from signals.db import access, subscribers, subscriptions
from signals.entitlements import is_entitled, load_plans
from signals.interfaces import AccessPlatform
from signals.model import Channel, Plan
from signals.payments.base import as_utc

log = logging.getLogger(__name__)

INVITED, GRANTED, MEMBER, REMOVED = "invited", "granted", "member", "removed"
HOLDING = frozenset({INVITED, GRANTED, MEMBER})  # states in which we gave access


@dataclass(frozen=True, slots=True)
class AccessChange:
    """One thing the reconciler did: ``grant`` (a link or a role), ``revoke``, ``joined``
    (an invited subscriber is now a member)."""

    subscriber_id: str
    plan_id: str
    platform: str
    action: str
    invite_link: str | None = field(default=None, repr=False)  # to hand the subscriber
    expires_at: dt.datetime | None = None


@dataclass
class ReconcileReport:
    """A run's changes, and the (subscriber, plan, platform) pairs it could not converge."""

    changes: list[AccessChange] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def plan_target(plan: Plan, platform: Channel) -> object | None:
    """The plan's paid space on ``platform`` (None: the plan has none there)."""
    if platform == Channel.TELEGRAM:
        return plan.telegram_chat_id
    return plan.discord_role_id


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AccessReconciler:
    """Converges the ``access`` table and the platforms to the entitlements (module docstring)."""

    def __init__(
        self,
        engine: Engine,
        platforms: Sequence[AccessPlatform],
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.platforms = list(platforms)
        self.clock = clock or _utcnow

    # -- state ---------------------------------------------------------------------------------
    def _subscriber(self, conn: Connection, subscriber_id: str) -> Any:
        return conn.execute(
            sa.select(subscribers).where(subscribers.c.subscriber_id == subscriber_id)
        ).first()

    def _entitled_plans(
        self, conn: Connection, subscriber_id: str, plans: dict[str, Plan]
    ) -> set[str]:
        now = self.clock()
        rows = conn.execute(
            sa.select(
                subscriptions.c.plan_id, subscriptions.c.status, subscriptions.c.past_due_since
            ).where(subscriptions.c.subscriber_id == subscriber_id)
        )
        return {
            r.plan_id
            for r in rows
            if r.plan_id in plans
            and is_entitled(r.status, r.past_due_since, plans[r.plan_id].grace_days, now)
        }

    def _access_rows(self, conn: Connection, subscriber_id: str) -> dict[tuple[str, str], Any]:
        rows = conn.execute(sa.select(access).where(access.c.subscriber_id == subscriber_id))
        return {(r.plan_id, r.platform): r for r in rows}

    def _write(
        self,
        subscriber_id: str,
        plan_id: str,
        platform: str,
        state: str,
        link: str | None = None,
        expires: dt.datetime | None = None,
    ) -> None:
        values = {
            "state": state,
            "invite_link": link,
            "invite_expires_at": expires,
            "updated_at": self.clock(),
        }
        key = (
            (access.c.subscriber_id == subscriber_id)
            & (access.c.plan_id == plan_id)
            & (access.c.platform == platform)
        )
        with self.engine.begin() as conn:
            if conn.execute(sa.update(access).where(key).values(**values)).rowcount == 0:
                conn.execute(
                    sa.insert(access).values(
                        subscriber_id=subscriber_id, plan_id=plan_id, platform=platform, **values
                    )
                )

    # -- converging ------------------------------------------------------------------------------
    async def reconcile_subscriber(
        self, subscriber_id: str, thorough: bool = True
    ) -> ReconcileReport:
        """Converge one subscriber on every platform. ``thorough`` also asks the platform about
        spaces we believe they are out of (one ``is_member`` call more per such space)."""
        report = ReconcileReport()
        with self.engine.connect() as conn:
            all_plans = {p.plan_id: p for p in load_plans(conn, active_only=False)}
            active = {p.plan_id for p in load_plans(conn, active_only=True)}
            sub = self._subscriber(conn, subscriber_id)
            entitled = self._entitled_plans(conn, subscriber_id, all_plans) & active
            rows = self._access_rows(conn, subscriber_id)
        if sub is None:
            return report
        for platform in self.platforms:
            channel = Channel(platform.platform)
            user = sub.telegram_user_id if channel == Channel.TELEGRAM else sub.discord_user_id
            for plan in all_plans.values():
                row = rows.get((plan.plan_id, channel.value))
                if plan_target(plan, channel) is None or user is None:
                    if row is not None and row.state in HOLDING:
                        report.errors.append(
                            f"{subscriber_id}/{plan.plan_id}/{channel.value}: access recorded "
                            "but the plan or the subscriber has no space or user id there now"
                        )
                    continue
                try:
                    change = await self._converge(
                        platform,
                        plan,
                        subscriber_id,
                        str(user),
                        plan.plan_id in entitled,
                        row,
                        thorough,
                    )
                except Exception as err:  # one platform failure must not stop the others
                    what = f"{subscriber_id}/{plan.plan_id}/{channel.value}"
                    report.errors.append(f"{what}: {type(err).__name__}: {err}")
                    log.warning("access reconcile of %s failed: %s", what, type(err).__name__)
                    continue
                if change is not None:
                    report.changes.append(change)
        return report

    async def _converge(
        self,
        platform: AccessPlatform,
        plan: Plan,
        subscriber_id: str,
        user: str,
        desired: bool,
        row: Any,
        thorough: bool,
    ) -> AccessChange | None:
        name = Channel(platform.platform).value
        state = row.state if row is not None else None
        if not desired:
            if state not in HOLDING and not thorough:
                return None  # never granted (or already removed): nothing to ask the platform
            if state in HOLDING or await platform.is_member(plan, user):
                await platform.revoke(plan, subscriber_id, user)
                self._write(subscriber_id, plan.plan_id, name, REMOVED)
                return AccessChange(subscriber_id, plan.plan_id, name, "revoke")
            return None
        if await platform.is_member(plan, user):
            if state == INVITED:
                self._write(subscriber_id, plan.plan_id, name, MEMBER)
                return AccessChange(subscriber_id, plan.plan_id, name, "joined")
            if state not in (MEMBER, GRANTED):
                self._write(subscriber_id, plan.plan_id, name, MEMBER)
            return None
        link_alive = state == INVITED and row.invite_expires_at is not None
        if link_alive and as_utc(row.invite_expires_at) > self.clock():
            return None  # the link we gave is still good: do not spam new ones
        grant = await platform.grant(plan, subscriber_id, user)
        new_state = INVITED if grant.invite_link else GRANTED
        self._write(
            subscriber_id, plan.plan_id, name, new_state, grant.invite_link, grant.expires_at
        )
        return AccessChange(
            subscriber_id, plan.plan_id, name, "grant", grant.invite_link, grant.expires_at
        )

    async def reconcile_all(self) -> ReconcileReport:
        """Converge every subscriber who has a subscription or an access row (the safety net)."""
        with self.engine.connect() as conn:
            ids = sorted(
                {r[0] for r in conn.execute(sa.select(subscriptions.c.subscriber_id).distinct())}
                | {r[0] for r in conn.execute(sa.select(access.c.subscriber_id).distinct())}
            )
        report = ReconcileReport()
        for subscriber_id in ids:
            one = await self.reconcile_subscriber(subscriber_id, thorough=False)
            report.changes += one.changes
            report.errors += one.errors
        return report

    async def run_periodic(
        self,
        interval_s: float,
        stop: asyncio.Event | None = None,
        on_report: Callable[[ReconcileReport], None] | None = None,
        refresh: Callable[[], object] | None = None,
    ) -> None:
        """``reconcile_all`` every ``interval_s`` seconds until ``stop`` is set (or cancelled);
        ``refresh`` runs first in a worker thread (``SubscriptionService.refresh_subscriptions``:
        re-fetch from the provider what no webhook told us). A failed run is logged and the loop
        goes on."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                if refresh is not None:
                    await asyncio.to_thread(refresh)
                report = await self.reconcile_all()
                if report.changes or report.errors:
                    log.info(
                        "access reconcile: %d changes, %d errors",
                        len(report.changes),
                        len(report.errors),
                    )
                if on_report is not None:
                    on_report(report)
            except Exception as err:  # the safety net must survive a bad run
                log.warning("access reconcile run failed: %s: %s", type(err).__name__, err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
