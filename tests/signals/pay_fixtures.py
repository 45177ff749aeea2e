"""Fixtures for the payment tests: the Stripe fake, the service behind a real webhook endpoint,
an injectable clock, and a recording access platform.

``RecordingAccess`` is an explicit in-test :class:`signals.interfaces.AccessPlatform`: it keeps
the members of each plan's space in a set and records every call, so a test can assert exactly
what the reconciler granted and revoked (the real Telegram one is tested against the local Bot
API server in test_access.py). A Telegram-like instance answers a grant with a single-use link;
a Discord-like one (``links=False``) makes the user a member at once, like a role.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
import stripe
from sqlalchemy.engine import Engine
from starlette.applications import Starlette

from signals.access import AccessReconciler
from signals.db import make_engine
from signals.interfaces import AccessGrant
from signals.local.uvicorn_thread import UvicornThread
from signals.model import Channel, Plan
from signals.payments.stripe_provider import StripeProvider
from signals.subscriptions import SubscriptionService, default_plans, stripe_webhook_route
from tests.fakes.stripe_api import StripeFake

T0 = dt.datetime(2026, 12, 7, 15, 0, tzinfo=dt.UTC)


class Clock:
    """The service's and the reconciler's now(), moved by the test."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += dt.timedelta(**kw)


@dataclass
class RecordingAccess:
    """An in-test access platform (module docstring)."""

    platform: Channel = Channel.TELEGRAM
    links: bool = True
    members: set[tuple[str, str]] = field(default_factory=set)  # (plan_id, user)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (action, plan, user)
    fail: bool = False
    _n: int = 0

    async def grant(self, plan: Plan, subscriber_id: str, platform_user_id: str) -> AccessGrant:
        self._check()
        self.calls.append(("grant", plan.plan_id, platform_user_id))
        if not self.links:
            self.members.add((plan.plan_id, platform_user_id))
            return AccessGrant()
        self._n += 1
        return AccessGrant(f"https://t.me/+link{self._n}", T0 + dt.timedelta(days=365))

    async def revoke(self, plan: Plan, subscriber_id: str, platform_user_id: str) -> None:
        self._check()
        self.calls.append(("revoke", plan.plan_id, platform_user_id))
        self.members.discard((plan.plan_id, platform_user_id))

    async def is_member(self, plan: Plan, platform_user_id: str) -> bool:
        self._check()
        return (plan.plan_id, platform_user_id) in self.members

    def join(self, plan_id: str, user: str) -> None:
        self.members.add((plan_id, user))

    def actions(self, action: str) -> list[tuple[str, str, str]]:
        return [c for c in self.calls if c[0] == action]

    def _check(self) -> None:
        if self.fail:
            raise ConnectionError("platform down")


@dataclass
class StripeHarness:
    fake: StripeFake
    engine: Engine
    service: SubscriptionService
    access: RecordingAccess
    clock: Clock
    admin: stripe.StripeClient  # the operator's client (creates products and prices)

    def count(self, table: sa.Table) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def sub_row(self, ref: str) -> sa.Row:
        from signals.db import subscriptions

        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(subscriptions).where(subscriptions.c.provider_ref == ref)
            ).first()
        assert row is not None, f"no subscriptions row for {ref}"
        return row


def create_prices(admin: stripe.StripeClient, plans: list[Plan]) -> None:
    """What the operator does once in the Stripe dashboard: a product, a price per plan."""
    product = admin.v1.products.create({"name": "Alpaca Improved signals"})
    for plan in plans:
        admin.v1.prices.create(
            {
                "product": product.id,
                "unit_amount": plan.price_cents,
                "currency": plan.currency,
                "recurring": {"interval": plan.interval},
                "lookup_key": plan.plan_id,
            }
        )


def build_harness(home: Path, environ: dict[str, str]) -> Iterator[StripeHarness]:
    clock = Clock()
    plans = default_plans()
    with StripeFake() as fake:
        admin = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.url})
        create_prices(admin, plans)
        engine = make_engine(home, environ)
        env = {
            "STRIPE_API_KEY": fake.api_key,
            "STRIPE_WEBHOOK_SECRET": fake.webhook_secret,
            "STRIPE_API_URL": fake.url,
        }
        provider = StripeProvider.from_env(env)
        access = RecordingAccess()
        reconciler = AccessReconciler(engine, [access], clock=clock)
        service = SubscriptionService(engine, provider, plans, reconciler, clock=clock)
        server = UvicornThread(Starlette(routes=[stripe_webhook_route(service)]), name="webhook")
        server.start()
        fake.webhook_url = f"{server.url}/stripe/webhook"
        try:
            yield StripeHarness(fake, engine, service, access, clock, admin)
        finally:
            server.stop()
            engine.dispose()


@pytest.fixture
def stripe_env(tmp_path: Path) -> Iterator[StripeHarness]:
    """The service on SQLite with Stripe = the fake, its webhook endpoint served by uvicorn."""
    yield from build_harness(tmp_path, {})
