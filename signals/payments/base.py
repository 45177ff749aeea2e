"""The payment provider seam: what the subscription service asks of Stripe or the local provider.

The service never trusts an event's payload or its order (Stripe delivers at least once, in no
particular order): a :class:`ProviderEvent` only names *which* subscription changed, and the
service re-fetches it with :meth:`PaymentProvider.fetch_subscription` before it writes anything.
So a provider needs five things: make a checkout link, make a portal link, cancel at period end,
report a subscription's true state, and turn a raw webhook into an event (or refuse it).
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from signals.errors import SignalsError
from signals.interfaces import CheckoutLink
from signals.model import Plan


class WebhookError(SignalsError):
    """A webhook that must not be processed: bad or missing signature, stale timestamp, not JSON.
    The endpoint answers 400 and stores nothing."""


class ProviderError(SignalsError):
    """The provider refused or failed a call (after its own retries); the message names it."""


class NotFoundError(ProviderError):
    """The provider has no such object: retrying cannot help (an event about it is dropped)."""


@dataclass(frozen=True, slots=True)
class Customer:
    """Who pays: our subscriber and, once known, the provider's customer id."""

    subscriber_id: str
    email: str | None = None
    provider_customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderSubscription:
    """A subscription as the provider holds it right now (the truth the service mirrors)."""

    ref: str  # Stripe's sub_..., the local provider's lsub_...
    customer: str
    plan_id: str | None  # from the price (lookup_key / metadata / Plan.stripe_price_id)
    status: str  # a signals.model.SubscriptionStatus value
    current_period_end: dt.datetime | None
    cancel_at_period_end: bool
    subscriber_id: str | None = None  # from the subscription's metadata, when we set it


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A verified webhook (or a local provider's event): its id, its type, and the subscription
    it concerns (``None`` for event types that concern none)."""

    id: str
    type: str
    object_ref: str | None
    subscriber_hint: str | None = None  # checkout's client_reference_id, when present


# the event types the service acts on; any other verified event is recorded and ignored
SUBSCRIPTION_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "invoice.paid",
        "invoice.payment_failed",
        "invoice.payment_action_required",
    }
)


class PaymentProvider(ABC):
    """A payment provider (Stripe, or the embedded local one)."""

    name: str  # stored in subscriptions.provider and payment_events.provider

    @abstractmethod
    def create_checkout(self, customer: Customer, plan: Plan) -> tuple[CheckoutLink, str]:
        """A checkout link for ``plan``; returns it and the provider's customer id (created on
        first use, so the service can store it on the subscriber)."""

    @abstractmethod
    def portal_url(self, customer: Customer, return_url: str | None = None) -> str:
        """Where the subscriber manages payment methods and invoices."""

    @abstractmethod
    def cancel_at_period_end(self, provider_ref: str) -> ProviderSubscription:
        """Stop renewing; access is kept until the current period ends."""

    @abstractmethod
    def fetch_subscription(self, provider_ref: str) -> ProviderSubscription:
        """The subscription's state at the provider now."""

    @abstractmethod
    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """Verify and parse a webhook from the raw bytes; raise :class:`WebhookError`."""

    def use_plans(self, plans: list[Plan]) -> None:  # noqa: B027 - optional hook
        """The service's plans (a provider that maps prices to plans keeps them)."""


def as_utc(ts: dt.datetime) -> dt.datetime:
    """``ts`` as aware UTC (SQLite hands back naive datetimes for columns stored as UTC)."""
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
