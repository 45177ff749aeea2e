"""Stripe as the payment provider, through the official ``stripe`` library (16.1, ``StripeClient``).

Configuration comes only from the environment or mounted files, and the key is never logged or
put in an error message:

- ``STRIPE_API_KEY`` (or ``STRIPE_API_KEY_FILE``): a secret ``sk_...`` or restricted ``rk_...`` key.
- ``STRIPE_WEBHOOK_SECRET`` (or ``STRIPE_WEBHOOK_SECRET_FILE``): the endpoint's ``whsec_...``.
- ``STRIPE_API_URL``: the API base (a local fake in tests); Stripe's own by default.
- ``STRIPE_SUCCESS_URL`` / ``STRIPE_CANCEL_URL``: where Checkout sends the customer afterwards.

Plans map to prices by ``Plan.stripe_price_id`` when set, else by the active price whose
``lookup_key`` is the plan id; back from a subscription by the same two, then by the price's or
the subscription's ``metadata.plan_id``. Creates carry idempotency keys derived from our ids
(``signals-customer-<subscriber>``, ``signals-checkout-<subscriber>-<plan>-<attempt>``), and the
client retries network errors and 5xx twice with the same key (``max_network_retries=2``), so a
lost answer cannot make a second customer or session.

Webhooks are verified on the raw bytes by ``stripe.Webhook.construct_event`` (HMAC-SHA256 over
``"<t>.<body>"``, timestamps older than 300 s refused); a body re-serialized by a framework would
not verify, which is why the route hands over ``await request.body()`` untouched.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import stripe

from signals.env import secret_from_env
from signals.errors import ConfigError
from signals.interfaces import CheckoutLink
from signals.model import Plan
from signals.payments.base import (
    Customer,
    NotFoundError,
    PaymentProvider,
    ProviderError,
    ProviderEvent,
    ProviderSubscription,
    WebhookError,
)
from signals.payments.config import PUBLIC_URL_ENV

log = logging.getLogger(__name__)
TOLERANCE_S = 300


class StripeProvider(PaymentProvider):
    """Checkout, the customer portal, cancel at period end, re-fetch, verified webhooks."""

    name = "stripe"

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        api_url: str | None = None,
        success_url: str = "http://127.0.0.1:8080/checkout/done",
        cancel_url: str | None = None,
        max_network_retries: int = 2,
        tolerance_s: int = TOLERANCE_S,
    ) -> None:
        if not api_key.startswith(("sk_", "rk_")):
            raise ConfigError(
                "STRIPE_API_KEY does not look like a Stripe secret key (sk_... or rk_...); "
                "copy it from the Stripe dashboard's API keys page"
            )
        if not webhook_secret:
            raise ConfigError(
                "STRIPE_WEBHOOK_SECRET is not set; copy the endpoint's signing secret (whsec_...)"
            )
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_url} if api_url else None,
            max_network_retries=max_network_retries,
        )
        self._webhook_secret = webhook_secret
        self._tolerance = tolerance_s
        self.success_url = success_url
        self.cancel_url = cancel_url or success_url
        self._plans: dict[str, Plan] = {}
        self._price_ids: dict[str, str] = {}  # plan_id -> price id (resolved once)

    def __repr__(self) -> str:  # never the key
        return f"StripeProvider(plans={sorted(self._plans)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> StripeProvider:
        """Build from ``STRIPE_*`` (module docstring); one clear line when something is off."""
        key = secret_from_env(environ, "STRIPE_API_KEY")
        if not key:
            raise ConfigError("STRIPE_API_KEY (or STRIPE_API_KEY_FILE) is not set")
        public = environ.get(PUBLIC_URL_ENV, "http://127.0.0.1:8080").rstrip("/")
        api_url = environ.get("STRIPE_API_URL") or None
        if api_url is not None and not api_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"STRIPE_API_URL={api_url!r} is not an http(s) URL; unset it for Stripe's own API"
            )
        return cls(
            key,
            secret_from_env(environ, "STRIPE_WEBHOOK_SECRET") or "",
            api_url=api_url,
            success_url=environ.get("STRIPE_SUCCESS_URL") or f"{public}/checkout/done",
            cancel_url=environ.get("STRIPE_CANCEL_URL") or None,
        )

    def use_plans(self, plans: list[Plan]) -> None:
        self._plans = {p.plan_id: p for p in plans}
        self._price_ids = {p.plan_id: p.stripe_price_id for p in plans if p.stripe_price_id}

    # -- calls ---------------------------------------------------------------------------------
    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except stripe.StripeError as err:
            # the library masks keys in its own messages; we still keep only the Stripe message
            detail = (err.user_message or type(err).__name__).splitlines()[0][:200]
            if err.code == "resource_missing":
                raise NotFoundError(f"Stripe {what} failed: {detail}") from None
            raise ProviderError(f"Stripe {what} failed: {detail}") from None

    def price_id(self, plan: Plan) -> str:
        """The Stripe price of ``plan`` (``stripe_price_id``, else the ``lookup_key`` match)."""
        if plan.plan_id in self._price_ids:
            return self._price_ids[plan.plan_id]
        found = self._call(
            "price lookup",
            self._client.v1.prices.list,
            {"lookup_keys": [plan.plan_id], "active": True, "limit": 1},
        )
        if not found.data:
            raise ConfigError(
                f"no active Stripe price has lookup_key {plan.plan_id!r}: create the price with "
                "that lookup_key, or set stripe_price_id on the plan in the plans file"
            )
        self._price_ids[plan.plan_id] = str(found.data[0].id)
        return self._price_ids[plan.plan_id]

    def _customer_id(self, customer: Customer) -> str:
        if customer.provider_customer_id and customer.provider_customer_id.startswith("cus_"):
            return customer.provider_customer_id
        params: dict[str, Any] = {"metadata": {"subscriber_id": customer.subscriber_id}}
        if customer.email:
            params["email"] = customer.email
        created = self._call(
            "customer create",
            self._client.v1.customers.create,
            params,
            {"idempotency_key": f"signals-customer-{customer.subscriber_id}"},
        )
        return str(created.id)

    def create_checkout(self, customer: Customer, plan: Plan) -> tuple[CheckoutLink, str]:
        cus = self._customer_id(customer)
        meta = {"subscriber_id": customer.subscriber_id, "plan_id": plan.plan_id}
        attempt = uuid.uuid4().hex[:12]
        session = self._call(
            "checkout create",
            self._client.v1.checkout.sessions.create,
            {
                "mode": "subscription",
                "customer": cus,
                "client_reference_id": customer.subscriber_id,
                "line_items": [{"price": self.price_id(plan), "quantity": 1}],
                "success_url": self.success_url,
                "cancel_url": self.cancel_url,
                "metadata": meta,
                "subscription_data": {"metadata": meta},
            },
            {
                "idempotency_key": (
                    f"signals-checkout-{customer.subscriber_id}-{plan.plan_id}-{attempt}"
                )
            },
        )
        return CheckoutLink(url=str(session.url), session_id=str(session.id)), cus

    def portal_url(self, customer: Customer, return_url: str | None = None) -> str:
        if not customer.provider_customer_id:
            raise ProviderError(
                f"subscriber {customer.subscriber_id} has no Stripe customer yet (subscribe first)"
            )
        session = self._call(
            "portal session",
            self._client.v1.billing_portal.sessions.create,
            {
                "customer": customer.provider_customer_id,
                "return_url": return_url or self.success_url,
            },
        )
        return str(session.url)

    def cancel_at_period_end(self, provider_ref: str) -> ProviderSubscription:
        sub = self._call(
            "cancel at period end",
            self._client.v1.subscriptions.update,
            provider_ref,
            {"cancel_at_period_end": True},
        )
        return self._to_provider(sub)

    def fetch_subscription(self, provider_ref: str) -> ProviderSubscription:
        sub = self._call("subscription fetch", self._client.v1.subscriptions.retrieve, provider_ref)
        return self._to_provider(sub)

    def _plan_of(self, sub: dict[str, Any], price: dict[str, Any] | None) -> str | None:
        by_price = {v: k for k, v in self._price_ids.items()}
        if price is not None:
            if price.get("id") in by_price:
                return by_price[price["id"]]
            if price.get("lookup_key") in self._plans:
                return str(price["lookup_key"])
            meta = price.get("metadata") or {}
            if meta.get("plan_id"):
                return str(meta["plan_id"])
        meta = sub.get("metadata") or {}
        return str(meta["plan_id"]) if meta.get("plan_id") else None

    def _to_provider(self, obj: Any) -> ProviderSubscription:
        sub: dict[str, Any] = obj.to_dict()
        items = (sub.get("items") or {}).get("data") or []
        ends = [int(i["current_period_end"]) for i in items if i.get("current_period_end")]
        price = items[0].get("price") if items else None
        customer = sub.get("customer")
        meta = sub.get("metadata") or {}
        return ProviderSubscription(
            ref=str(sub["id"]),
            customer=str(customer.get("id") if isinstance(customer, dict) else customer),
            plan_id=self._plan_of(sub, price),
            status=str(sub["status"]),
            current_period_end=dt.datetime.fromtimestamp(max(ends), dt.UTC) if ends else None,
            cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
            subscriber_id=str(meta["subscriber_id"]) if meta.get("subscriber_id") else None,
        )

    # -- webhooks -----------------------------------------------------------------------------
    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        sig = next((v for k, v in headers.items() if k.lower() == "stripe-signature"), None)
        if not sig:
            raise WebhookError("Stripe webhook without a Stripe-Signature header: refused")
        try:
            event = stripe.Webhook.construct_event(
                raw_body, sig, self._webhook_secret, tolerance=self._tolerance
            )
        except stripe.SignatureVerificationError as err:
            raise WebhookError(f"Stripe webhook signature refused: {err.user_message}") from None
        except ValueError:
            raise WebhookError("Stripe webhook body is not JSON: refused") from None
        return event_from_payload(event.id, event.type, event.data.object.to_dict())


def event_from_payload(event_id: str, type_: str, obj: dict[str, Any]) -> ProviderEvent:
    """Which subscription an event concerns (only that: the payload itself is not trusted)."""
    kind = obj.get("object")
    ref: str | None = None
    hint: str | None = None
    if kind == "subscription":
        ref = obj.get("id")
    elif kind == "invoice":
        details = (obj.get("parent") or {}).get("subscription_details") or {}
        ref = details.get("subscription") or obj.get("subscription")  # legacy API versions
    elif kind == "checkout.session":
        ref = obj.get("subscription")
        hint = obj.get("client_reference_id")
    if ref is not None and not isinstance(ref, str):
        ref = ref.get("id")  # an expanded object
    return ProviderEvent(id=str(event_id), type=str(type_), object_ref=ref, subscriber_hint=hint)
