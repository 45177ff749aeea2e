"""The embedded payment provider: subscriptions without Stripe, for the demo and keyless setups.

It keeps its own records in the signals database (``local_checkouts``, ``local_subscriptions``:
what Stripe would hold), so the service treats it exactly like Stripe: it re-fetches the
subscription after every event and never trusts the event. Nobody pays: a checkout is completed
by :meth:`LocalProvider.complete` (the CLI, the demo or the dashboard's confirm page call it),
and the operator can walk a subscription through Stripe's statuses for a demo or a test
(:meth:`fail_payment`, :meth:`recover`, :meth:`cancel`, :meth:`advance_period`). Each of these
returns the :class:`ProviderEvent` list Stripe would have sent, which the caller hands to the
same handler the Stripe webhook feeds (``SubscriptionService.handle_payment_event``).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from signals.db import local_checkouts, local_subscriptions
from signals.errors import SignalsError
from signals.interfaces import CheckoutLink
from signals.model import Plan, SubscriptionStatus
from signals.payments.base import (
    Customer,
    NotFoundError,
    PaymentProvider,
    ProviderEvent,
    ProviderSubscription,
    WebhookError,
    as_utc,
)

PERIOD = dt.timedelta(days=30)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LocalProvider(PaymentProvider):
    """Stripe's subscription lifecycle, kept in the signals database, with no keys."""

    name = "local"

    def __init__(
        self,
        engine: Engine,
        public_url: str = "http://127.0.0.1:8080",
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.public_url = public_url.rstrip("/")
        self.clock = clock or _utcnow

    @staticmethod
    def _event(type_: str, ref: str, hint: str | None = None) -> ProviderEvent:
        return ProviderEvent(f"levt_{secrets.token_hex(10)}", type_, ref, hint)

    def _row(self, ref: str) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(local_subscriptions).where(local_subscriptions.c.ref == ref)
            ).first()
        if row is None:
            raise NotFoundError(f"local provider: no subscription {ref!r}")
        return row

    def _set(self, ref: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(local_subscriptions)
                .where(local_subscriptions.c.ref == ref)
                .values(updated_at=self.clock(), **values)
            )

    # -- the provider interface ---------------------------------------------------------------
    def create_checkout(self, customer: Customer, plan: Plan) -> tuple[CheckoutLink, str]:
        session_id = f"lcs_{secrets.token_hex(10)}"
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(local_checkouts).values(
                    session_id=session_id,
                    subscriber_id=customer.subscriber_id,
                    plan_id=plan.plan_id,
                    status="open",
                    created_at=self.clock(),
                )
            )
        url = f"{self.public_url}/local/checkout/{session_id}"
        return CheckoutLink(url=url, session_id=session_id), self._customer(customer)

    @staticmethod
    def _customer(customer: Customer) -> str:
        ref = customer.provider_customer_id
        return ref if ref and ref.startswith("lcus_") else f"lcus_{customer.subscriber_id}"

    def portal_url(self, customer: Customer, return_url: str | None = None) -> str:
        return f"{self.public_url}/local/portal/{self._customer(customer)}"

    def cancel_at_period_end(self, provider_ref: str) -> ProviderSubscription:
        row = self._row(provider_ref)
        if row.status != SubscriptionStatus.CANCELED:
            self._set(provider_ref, cancel_at_period_end=True)
        return self.fetch_subscription(provider_ref)

    def fetch_subscription(self, provider_ref: str) -> ProviderSubscription:
        row = self._row(provider_ref)
        return ProviderSubscription(
            ref=row.ref,
            customer=row.customer,
            plan_id=row.plan_id,
            status=row.status,
            current_period_end=as_utc(row.current_period_end),
            cancel_at_period_end=bool(row.cancel_at_period_end),
            subscriber_id=row.subscriber_id,
        )

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        raise WebhookError("the local payment provider receives no webhooks (Stripe is not set)")

    def checkout_session(self, session_id: str) -> Any:
        """The stored checkout session (``None`` if unknown): plan, subscriber, status."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(local_checkouts).where(local_checkouts.c.session_id == session_id)
            ).first()

    # -- what the customer and the billing engine would do ------------------------------------
    def complete(self, session_id: str) -> list[ProviderEvent]:
        """The subscriber confirmed the checkout: an active subscription for one period."""
        now = self.clock()
        ref = f"lsub_{secrets.token_hex(10)}"
        with self.engine.begin() as conn:
            cs = conn.execute(
                sa.select(local_checkouts).where(local_checkouts.c.session_id == session_id)
            ).first()
            if cs is None:
                raise SignalsError(f"local checkout {session_id!r} does not exist")
            if cs.status != "open":
                raise SignalsError(f"local checkout {session_id!r} is already {cs.status}")
            conn.execute(
                sa.update(local_checkouts)
                .where(local_checkouts.c.session_id == session_id)
                .values(status="complete", subscription_ref=ref)
            )
            conn.execute(
                sa.insert(local_subscriptions).values(
                    ref=ref,
                    customer=f"lcus_{cs.subscriber_id}",
                    subscriber_id=cs.subscriber_id,
                    plan_id=cs.plan_id,
                    status=SubscriptionStatus.ACTIVE.value,
                    current_period_end=now + PERIOD,
                    cancel_at_period_end=False,
                    updated_at=now,
                )
            )
        return [
            self._event("checkout.session.completed", ref, cs.subscriber_id),
            self._event("customer.subscription.created", ref),
            self._event("invoice.paid", ref),
        ]

    def fail_payment(self, ref: str) -> list[ProviderEvent]:
        """A renewal payment failed: ``past_due`` (the grace period starts)."""
        self._row(ref)
        self._set(ref, status=SubscriptionStatus.PAST_DUE.value)
        return [
            self._event("invoice.payment_failed", ref),
            self._event("customer.subscription.updated", ref),
        ]

    def recover(self, ref: str) -> list[ProviderEvent]:
        """The failed payment went through after all: ``active`` again."""
        self._row(ref)
        self._set(ref, status=SubscriptionStatus.ACTIVE.value)
        return [self._event("invoice.paid", ref), self._event("customer.subscription.updated", ref)]

    def cancel(self, ref: str, final: str = "canceled") -> list[ProviderEvent]:
        """End it now: ``canceled`` (retries exhausted, or canceled by the operator) or
        ``unpaid`` (kept, but no further attempts)."""
        if final not in (SubscriptionStatus.CANCELED, SubscriptionStatus.UNPAID):
            raise SignalsError(f"final status must be canceled or unpaid, not {final!r}")
        self._row(ref)
        self._set(ref, status=final)
        kind = "deleted" if final == SubscriptionStatus.CANCELED else "updated"
        return [self._event(f"customer.subscription.{kind}", ref)]

    def advance_period(self, ref: str) -> list[ProviderEvent]:
        """The period ended: canceled when it was set to cancel at period end, else renewed."""
        row = self._row(ref)
        if row.cancel_at_period_end:
            return self.cancel(ref)
        self._set(ref, current_period_end=as_utc(row.current_period_end) + PERIOD)
        return [self._event("invoice.paid", ref), self._event("customer.subscription.updated", ref)]
