"""Subscribers, plans and subscriptions: the service behind ``/plans``, ``/subscribe``, ``/status``
and ``/unsubscribe``, and the one handler for payment events (Stripe webhooks, local events).

Plans come from a JSON file, ``<home>/signals/plans.json`` or the path in
``ALPACA_IMPROVED_SIGNALS_PLANS``: ``{"plans": [{"plan_id": "realtime", "strategy": "*",
"tier": {"name": "realtime", "delay_minutes": 0, "end_of_day": false}, "price_cents": 4900,
...}]}`` with the fields of :class:`signals.model.Plan`. A bad file fails at start-up with one line
naming the file, the plan and the field. Without a file the local provider runs the demo's
:func:`default_plans` (Stripe needs a file: its prices must exist).

A payment event is handled the way Stripe's delivery demands (at least once, any order):
record its id first (a duplicate that was processed is a no-op), re-fetch the subscription from
the provider (the event's payload and its position in the stream are never trusted), upsert the
``subscriptions`` row (``past_due_since`` set when it enters ``past_due``, cleared when it
leaves), then converge that subscriber's access (:class:`signals.access.AccessReconciler`). An
event whose handling failed stays unprocessed, so the provider's redelivery processes it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from signals.access import AccessChange, AccessReconciler
from signals.db import payment_events, signals_dir, subscribers, subscriptions
from signals.db import plans as plans_table
from signals.entitlements import grace_until, is_entitled, plan_to_json
from signals.errors import ConfigError, SignalsError
from signals.interfaces import CheckoutLink, SubscriptionView
from signals.model import Channel, Plan, SubscriptionStatus, Tier
from signals.payments.base import (
    SUBSCRIPTION_EVENTS,
    Customer,
    NotFoundError,
    PaymentProvider,
    ProviderError,
    ProviderEvent,
    ProviderSubscription,
    WebhookError,
    as_utc,
)

log = logging.getLogger(__name__)
PLANS_ENV = "ALPACA_IMPROVED_SIGNALS_PLANS"


# --- plans -----------------------------------------------------------------------------------
class _TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=50)
    delay_minutes: int = Field(default=0, ge=0)
    end_of_day: bool = False


class _PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    plan_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")  # also a Stripe lookup_key
    strategy: str = Field(min_length=1, max_length=100)  # a strategy family, or "*"
    tier: _TierIn
    price_cents: int = Field(ge=0)
    currency: str = Field(default="usd", pattern=r"^[a-z]{3}$")
    interval: Literal["day", "week", "month", "year"] = "month"
    grace_days: int = Field(default=3, ge=0, le=60)
    telegram_chat_id: int | None = None
    discord_channel_id: str | None = Field(default=None, pattern=r"^\d{1,25}$")
    discord_role_id: str | None = Field(default=None, pattern=r"^\d{1,25}$")
    dm: bool = False
    stripe_price_id: str | None = Field(default=None, pattern=r"^price_[A-Za-z0-9]+$")


def plans_path(home: Path, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env[PLANS_ENV]) if env.get(PLANS_ENV) else signals_dir(home) / "plans.json"


def parse_plans(text: str, source: str) -> list[Plan]:
    """Plans from the file's text; :class:`ConfigError` naming ``source``, the plan, the field."""
    fix = "fix it (plans file format: README, Signals: plans)"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"plans file {source}: not JSON (line {err.lineno}: {err.msg}); {fix}"
        ) from None
    items = data.get("plans") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise ConfigError(
            f'plans file {source}: expected {{"plans": [ ... ]}} with at least one plan; {fix}'
        )
    out: list[Plan] = []
    for i, item in enumerate(items):
        name = item.get("plan_id", i) if isinstance(item, dict) else i
        try:
            p = _PlanIn.model_validate(item)
        except ValidationError as err:
            e = err.errors()[0]
            where = ".".join(str(x) for x in e["loc"]) or "(the plan)"
            raise ConfigError(
                f"plans file {source}: plans[{i}] ({name}) field {where}: {e['msg']}; {fix}"
            ) from None
        if any(q.plan_id == p.plan_id for q in out):
            raise ConfigError(
                f"plans file {source}: plans[{i}]: plan_id {p.plan_id!r} is repeated; {fix}"
            )
        values = p.model_dump()
        values["tier"] = Tier(**values["tier"])
        out.append(Plan(**values))
    return out


def load_plans_file(path: Path) -> list[Plan]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(
            f"plans file {path} cannot be read ({err.strerror}); set {PLANS_ENV} or create it"
        ) from None
    return parse_plans(text, str(path))


def default_plans(
    realtime_chat: int | None = -1001000000001,
    eod_chat: int | None = -1001000000002,
    realtime_role: str | None = "1100000000000000001",
    eod_role: str | None = "1100000000000000002",
) -> list[Plan]:
    """The demo's plans: every strategy (``*``) in real time, or held to the end of the day."""
    return [
        Plan(
            plan_id="realtime",
            strategy="*",
            tier=Tier("realtime", delay_minutes=0),
            price_cents=4900,
            telegram_chat_id=realtime_chat,
            discord_role_id=realtime_role,
            dm=True,
        ),
        Plan(
            plan_id="eod",
            strategy="*",
            tier=Tier("eod", end_of_day=True),
            price_cents=900,
            telegram_chat_id=eod_chat,
            discord_role_id=eod_role,
        ),
    ]


def resolve_plans(
    home: Path, environ: Mapping[str, str] | None = None, allow_default: bool = True
) -> list[Plan]:
    """The plans file's plans; without a file (and ``allow_default``) the demo's."""
    env = os.environ if environ is None else environ
    path = plans_path(home, env)
    if env.get(PLANS_ENV) or path.exists() or not allow_default:
        return load_plans_file(path)
    return default_plans()


# --- the service -----------------------------------------------------------------------------
@dataclass
class EventOutcome:
    """What handling one payment event did."""

    event_id: str
    duplicate: bool = False
    ignored: str = ""  # why nothing was written (unknown type, unknown subscriber ...)
    subscriber_id: str | None = None
    status: str | None = None
    changes: list[AccessChange] = field(default_factory=list)
    access_errors: list[str] = field(default_factory=list)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _insert_ignore(conn: Connection, table: sa.Table, values: dict[str, Any]) -> bool:
    """Insert unless the primary key exists; True when inserted (one statement on both dialects)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values).on_conflict_do_nothing()
    return bool(conn.execute(stmt).rowcount)


class SubscriptionService:
    """Implements :class:`signals.interfaces.Subscriptions` over the signals database and a
    :class:`PaymentProvider`; the payment events' handler (module docstring)."""

    def __init__(
        self,
        engine: Engine,
        provider: PaymentProvider,
        plans: list[Plan],
        reconciler: AccessReconciler | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.provider = provider
        self.reconciler = reconciler
        self.clock = clock or _utcnow
        self._plans = {p.plan_id: p for p in plans}
        self._event_lock = threading.Lock()  # re-fetch + upsert in order within this process
        provider.use_plans(plans)
        self.sync_plans(plans)

    def sync_plans(self, plans: list[Plan]) -> None:
        """Write the plans to the ``plans`` table; plans no longer listed become inactive (their
        members lose access at the next reconcile)."""
        with self.engine.begin() as conn:
            conn.execute(sa.update(plans_table).values(active=False))
            for plan in plans:
                values = {"plan_json": plan_to_json(plan), "active": True}
                key = plans_table.c.plan_id == plan.plan_id
                if conn.execute(sa.update(plans_table).where(key).values(**values)).rowcount == 0:
                    conn.execute(sa.insert(plans_table).values(plan_id=plan.plan_id, **values))

    # -- subscriber-facing (signals.interfaces.Subscriptions) --------------------------------------
    def register(self, platform: Channel, user_id: str, chat_id: str | None = None) -> str:
        column = (
            subscribers.c.telegram_user_id
            if platform == Channel.TELEGRAM
            else subscribers.c.discord_user_id
        )
        uid: int | str = int(user_id) if platform == Channel.TELEGRAM else str(user_id)
        subscriber_id = f"{Channel(platform).value}-{user_id}"
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(subscribers.c.subscriber_id).where(column == uid)).first()
            if row is not None:
                if chat_id is not None and platform == Channel.TELEGRAM:
                    conn.execute(
                        sa.update(subscribers)
                        .where(column == uid)
                        .values(telegram_chat_id=int(chat_id))
                    )
                return str(row[0])
            values: dict[str, Any] = {
                "subscriber_id": subscriber_id,
                "created_at": self.clock(),
                column.name: uid,
            }
            if chat_id is not None and platform == Channel.TELEGRAM:
                values["telegram_chat_id"] = int(chat_id)
            _insert_ignore(conn, subscribers, values)  # a concurrent first contact: same id
        return subscriber_id

    def plans(self) -> list[Plan]:
        return list(self._plans.values())

    def plan(self, plan_id: str) -> Plan:
        if plan_id not in self._plans:
            raise SignalsError(f"unknown plan {plan_id!r}; the plans are: {', '.join(self._plans)}")
        return self._plans[plan_id]

    def _customer(self, conn: Connection, subscriber_id: str) -> Customer:
        row = conn.execute(
            sa.select(subscribers).where(subscribers.c.subscriber_id == subscriber_id)
        ).first()
        if row is None:
            raise SignalsError(f"unknown subscriber {subscriber_id!r}: /start the bot first")
        return Customer(subscriber_id, row.email, row.provider_customer_id)

    def checkout(self, subscriber_id: str, plan_id: str) -> CheckoutLink:
        plan = self.plan(plan_id)
        with self.engine.connect() as conn:
            customer = self._customer(conn, subscriber_id)
        for view in self.status(subscriber_id):
            if (
                view.plan_id == plan_id
                and view.entitled
                and view.status != SubscriptionStatus.PAST_DUE
            ):
                raise SignalsError(f"you already have the {plan_id} plan (/status shows it)")
        link, provider_customer = self.provider.create_checkout(customer, plan)
        if provider_customer != customer.provider_customer_id:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.update(subscribers)
                    .where(subscribers.c.subscriber_id == subscriber_id)
                    .values(provider_customer_id=provider_customer)
                )
        return link

    def portal_url(self, subscriber_id: str) -> str:
        with self.engine.connect() as conn:
            customer = self._customer(conn, subscriber_id)
        return self.provider.portal_url(customer)

    def status(self, subscriber_id: str) -> list[SubscriptionView]:
        """One view per plan: the entitling subscription if any, else the latest."""
        now = self.clock()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(subscriptions)
                .where(subscriptions.c.subscriber_id == subscriber_id)
                .order_by(subscriptions.c.updated_at)
            ).all()
        best: dict[str, SubscriptionView] = {}
        for r in rows:
            grace = self._plans[r.plan_id].grace_days if r.plan_id in self._plans else 0
            view = SubscriptionView(
                plan_id=r.plan_id,
                status=r.status,
                entitled=is_entitled(r.status, r.past_due_since, grace, now),
                current_period_end=as_utc(r.current_period_end) if r.current_period_end else None,
                grace_until=grace_until(r.status, r.past_due_since, grace),
            )
            seen = best.get(r.plan_id)
            if seen is None or view.entitled or not seen.entitled:
                best[r.plan_id] = view
        return list(best.values())

    def unsubscribe(self, subscriber_id: str, plan_id: str) -> str:
        plan = self.plan(plan_id)
        with self.engine.connect() as conn:
            refs = [
                r[0]
                for r in conn.execute(
                    sa.select(subscriptions.c.provider_ref).where(
                        (subscriptions.c.subscriber_id == subscriber_id)
                        & (subscriptions.c.plan_id == plan.plan_id)
                        & (subscriptions.c.provider == self.provider.name)
                        & subscriptions.c.status.notin_(
                            [SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED]
                        )
                    )
                )
            ]
        if not refs:
            return f"You have no {plan_id} subscription to cancel."
        ends: list[dt.datetime] = []
        for ref in refs:
            sub = self.provider.cancel_at_period_end(ref)
            with self._event_lock, self.engine.begin() as conn:
                self._upsert(conn, sub, subscriber_id, sub.plan_id or plan_id)
            if sub.current_period_end is not None:
                ends.append(sub.current_period_end)
        if ends:
            end = f"{max(ends):%Y-%m-%d}"
            return f"Your {plan_id} subscription ends on {end}; access continues until then."
        return f"Your {plan_id} subscription will not renew."

    # -- payment events ---------------------------------------------------------------------------
    def record_event(self, event: ProviderEvent) -> EventOutcome:
        """Dedupe, re-fetch, upsert (module docstring); synchronous (a provider call inside).
        Raises :class:`ProviderError` when the re-fetch fails: the event stays unprocessed."""
        out = EventOutcome(event.id)
        with self.engine.begin() as conn:
            fresh = _insert_ignore(
                conn,
                payment_events,
                {
                    "event_id": event.id,
                    "provider": self.provider.name,
                    "type": event.type,
                    "received_at": self.clock(),
                },
            )
            if not fresh:
                done = conn.execute(
                    sa.select(payment_events.c.processed_at).where(
                        payment_events.c.event_id == event.id
                    )
                ).scalar_one()
                if done is not None:
                    out.duplicate = True
                    return out
        if event.type not in SUBSCRIPTION_EVENTS or event.object_ref is None:
            out.ignored = f"{event.type} concerns no subscription"
            self._mark(event.id)
            return out
        # one subscription's fetch-then-write runs alone, so a slower fetch of an older state
        # cannot land after a newer one: a thread lock here, a transaction-scoped advisory lock
        # across processes on Postgres
        with self._event_lock, self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                lock = sa.text("SELECT pg_advisory_xact_lock(hashtext(:ref))")
                conn.execute(lock, {"ref": f"signals-sub:{event.object_ref}"})
            try:
                sub = self.provider.fetch_subscription(event.object_ref)
            except NotFoundError as err:
                out.ignored = str(err)
                log.warning("payment event %s ignored: %s", event.id, err)
                self._mark(event.id, conn)
                return out
            subscriber_id = self._subscriber_of(conn, sub, event)
            plan_id = sub.plan_id if sub.plan_id in self._plans else None
            if subscriber_id is None or plan_id is None:
                out.ignored = f"subscription {sub.ref}: " + (
                    "no subscriber matches it"
                    if subscriber_id is None
                    else f"plan {sub.plan_id!r} is not in the plans file"
                )
                log.warning("payment event %s ignored: %s", event.id, out.ignored)
            else:
                self._upsert(conn, sub, subscriber_id, plan_id)
                out.subscriber_id, out.status = subscriber_id, sub.status
            self._mark(event.id, conn)
        return out

    def _mark(self, event_id: str, conn: Connection | None = None) -> None:
        stmt = (
            sa.update(payment_events)
            .where(payment_events.c.event_id == event_id)
            .values(processed_at=self.clock())
        )
        if conn is not None:
            conn.execute(stmt)
            return
        with self.engine.begin() as own:
            own.execute(stmt)

    def _subscriber_of(
        self, conn: Connection, sub: ProviderSubscription, event: ProviderEvent
    ) -> str | None:
        known = conn.execute(
            sa.select(subscriptions.c.subscriber_id).where(subscriptions.c.provider_ref == sub.ref)
        ).scalar()
        for candidate in (known, sub.subscriber_id, event.subscriber_hint):
            if candidate and self._exists(conn, candidate):
                return str(candidate)
        by_customer = conn.execute(
            sa.select(subscribers.c.subscriber_id).where(
                subscribers.c.provider_customer_id == sub.customer
            )
        ).scalar()
        return str(by_customer) if by_customer else None

    @staticmethod
    def _exists(conn: Connection, subscriber_id: str) -> bool:
        q = sa.select(subscribers.c.subscriber_id).where(
            subscribers.c.subscriber_id == subscriber_id
        )
        return conn.execute(q).first() is not None

    def _upsert(
        self, conn: Connection, sub: ProviderSubscription, subscriber_id: str, plan_id: str
    ) -> None:
        now = self.clock()
        old = conn.execute(
            sa.select(subscriptions.c.status, subscriptions.c.past_due_since).where(
                subscriptions.c.provider_ref == sub.ref
            )
        ).first()
        past_due_since: dt.datetime | None = None
        if sub.status == SubscriptionStatus.PAST_DUE:
            was = old.past_due_since if old is not None and old.status == "past_due" else None
            past_due_since = as_utc(was) if was is not None else now
        values = {
            "subscriber_id": subscriber_id,
            "plan_id": plan_id,
            "status": sub.status,
            "current_period_end": sub.current_period_end,
            "past_due_since": past_due_since,
            "cancel_at_period_end": sub.cancel_at_period_end,
            "updated_at": now,
        }
        if old is None:
            conn.execute(
                sa.insert(subscriptions).values(
                    subscription_id=f"{self.provider.name}:{sub.ref}",
                    provider=self.provider.name,
                    provider_ref=sub.ref,
                    **values,
                )
            )
        else:
            conn.execute(
                sa.update(subscriptions)
                .where(subscriptions.c.provider_ref == sub.ref)
                .values(**values)
            )

    def refresh_subscriptions(self) -> list[str]:
        """Re-fetch every subscription that has not ended and write what changed (the safety
        net for events never delivered); returns the subscribers whose row changed."""
        ended = [SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(subscriptions).where(
                    (subscriptions.c.provider == self.provider.name)
                    & subscriptions.c.status.notin_(ended)
                )
            ).all()
        changed: list[str] = []
        for row in rows:
            with self._event_lock, self.engine.begin() as conn:
                sub = self.provider.fetch_subscription(row.provider_ref)
                plan_id = sub.plan_id if sub.plan_id in self._plans else row.plan_id
                before = (row.status, row.plan_id, bool(row.cancel_at_period_end))
                if before != (sub.status, plan_id, sub.cancel_at_period_end):
                    self._upsert(conn, sub, row.subscriber_id, plan_id)
                    changed.append(row.subscriber_id)
        return sorted(set(changed))

    async def handle_payment_event(self, event: ProviderEvent) -> EventOutcome:
        """Record the event (in a worker thread: it calls the provider), then converge the
        subscriber's access. Idempotent: a duplicate changes nothing."""
        out = await asyncio.to_thread(self.record_event, event)
        if out.subscriber_id is not None and self.reconciler is not None:
            report = await self.reconciler.reconcile_subscriber(out.subscriber_id)
            out.changes, out.access_errors = report.changes, report.errors
        return out

    async def apply_local(self, events: list[ProviderEvent]) -> list[EventOutcome]:
        """Feed a local provider's events (``LocalProvider.complete`` ...) into the handler."""
        return [await self.handle_payment_event(e) for e in events]


def stripe_webhook_route(service: SubscriptionService, path: str = "/stripe/webhook") -> Route:
    """``POST /stripe/webhook``: 400 on a bad signature (nothing stored), 200 when handled or a
    duplicate, 503 when the provider could not be asked (Stripe redelivers later)."""

    async def endpoint(request: Request) -> JSONResponse:
        body = await request.body()  # the raw bytes: the signature covers exactly these
        try:
            event = service.provider.parse_webhook(body, request.headers)
        except WebhookError as err:
            log.warning("webhook refused: %s", err)
            return JSONResponse({"error": str(err)}, status_code=400)
        try:
            out = await service.handle_payment_event(event)
        except ProviderError as err:
            log.warning("webhook %s not processed yet: %s", event.id, err)
            return JSONResponse({"error": "provider unavailable, retry later"}, status_code=503)
        return JSONResponse({"received": True, "duplicate": out.duplicate, "ignored": out.ignored})

    return Route(path, endpoint, methods=["POST"])


def build_service(
    home: Path,
    environ: Mapping[str, str] | None = None,
    platforms: list[Any] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> SubscriptionService:
    """The service as ``signals serve`` and the CLI run it: the signals database, Stripe when a
    key is configured else the local provider, the plans file (the demo's plans only with the
    local provider), and an access reconciler over ``platforms``."""
    from signals.db import make_engine
    from signals.payments.config import make_provider
    from signals.payments.local import LocalProvider

    env = os.environ if environ is None else environ
    engine = make_engine(home, env)
    provider = make_provider(engine, env, clock=clock)
    plans = resolve_plans(home, env, allow_default=isinstance(provider, LocalProvider))
    reconciler = AccessReconciler(engine, platforms or [], clock=clock)
    return SubscriptionService(engine, provider, plans, reconciler, clock=clock)


_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
    "<body style='font-family:sans-serif;max-width:40em;margin:3em auto'>{body}</body></html>"
)


def checkout_routes(service: SubscriptionService) -> list[Route]:
    """The pages a subscriber lands on: ``GET /checkout/done`` (Stripe Checkout's default
    ``success_url``) and, with the local provider, ``/local/checkout/{id}``: ``GET`` shows the
    plan and a confirm button, ``POST`` completes it (no payment) and runs the events through
    the same handler as Stripe's webhooks."""
    from signals.payments.local import LocalProvider

    async def done(_request: Request) -> HTMLResponse:
        body = "<h1>Thank you</h1><p>Your access arrives in the bot in a moment: /status</p>"
        return HTMLResponse(_PAGE.format(title="Subscribed", body=body))

    routes = [Route("/checkout/done", done, methods=["GET"])]
    provider = service.provider
    if not isinstance(provider, LocalProvider):
        return routes

    async def page(request: Request) -> HTMLResponse:
        session_id = request.path_params["session_id"]
        session = provider.checkout_session(session_id)
        if session is None:
            return HTMLResponse(
                _PAGE.format(title="Not found", body="<p>No such checkout.</p>"), 404
            )
        plan = service.plan(session.plan_id)
        if request.method == "GET":
            body = (
                f"<h1>Subscribe to {html.escape(plan.plan_id)}</h1>"
                f"<p>{plan.price_cents / 100:.2f} {html.escape(plan.currency.upper())} per "
                f"{html.escape(plan.interval)} (local provider: nothing is charged).</p>"
                f"<form method='post'><button type='submit'>Confirm</button></form>"
            )
            return HTMLResponse(_PAGE.format(title="Checkout", body=body))
        try:
            events = await asyncio.to_thread(provider.complete, session_id)
        except SignalsError as err:
            return HTMLResponse(
                _PAGE.format(title="Checkout", body=f"<p>{html.escape(str(err))}</p>"), 409
            )
        await service.apply_local(events)
        body = f"<h1>Subscribed to {html.escape(plan.plan_id)}</h1><p>Back to the bot: /status</p>"
        return HTMLResponse(_PAGE.format(title="Subscribed", body=body))

    return [*routes, Route("/local/checkout/{session_id}", page, methods=["GET", "POST"])]
