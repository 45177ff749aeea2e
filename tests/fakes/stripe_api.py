"""A stateful Stripe API fake on 127.0.0.1 that the real ``stripe`` client talks to.

stripe-mock is unavailable here and stateless (STREAMS_BOTS_NOTES.md section 6), so a lifecycle
test needs a fake that remembers: customers, products, prices, Checkout sessions, subscriptions
and invoices live in memory, and the test moves a subscription through Stripe's statuses with
the in-process control API (the parts a customer or Stripe's billing engine would do):

    fake.complete_checkout(session_id)    # the customer paid: subscription active, invoice paid
    fake.fail_payment(sub_id)             # renewal failed: past_due, invoice.payment_failed
    fake.recover_payment(sub_id)          # a retry succeeded: active again
    fake.exhaust_retries(sub_id, "canceled")  # Smart Retries gave up: canceled (or "unpaid")
    fake.advance_period(sub_id)           # the period rolled over (or ended at period end)
    fake.change_price(sub_id, "eod")      # the customer switched plans in the portal

What it copies from Stripe, because our code depends on it:

- v1 endpoints with form-encoded bracket bodies (``items[0][price]=...``, ``metadata[k]=v``),
  Stripe's JSON shapes for API version ``2026-10-28.endive`` (the period lives on the
  subscription items; an invoice names its subscription under ``parent.subscription_details``)
  and its error bodies (401 for a bad key, 404 ``resource_missing``, 400 ``idempotency_error``).
- Idempotency: a POST's ``Idempotency-Key`` replays the first response byte for byte with
  ``Idempotent-Replayed: true``; the same key with other parameters is a 400 ``idempotency_error``.
  A request refused before it executes (the ``500`` fault) stores nothing, as Stripe does.
- Faults per route prefix, queued: ``500`` (refused before executing), ``500_after`` and
  ``disconnect_after`` (executed and stored, then the answer is lost: a gateway error or a dropped
  connection after the commit; the client's retry with the same key must replay, not re-create),
  ``disconnect`` (dropped before executing).
- Events: real event JSON (``evt_...``, ``data.object``, ``data.previous_attributes``,
  ``api_version``) POSTed to ``webhook_url`` with a ``Stripe-Signature: t=<unix>,v1=<hex>`` header
  (HMAC-SHA256 of ``"<t>.<body>"`` with the endpoint secret, the scheme
  ``stripe.Webhook.construct_event`` verifies). Delivery is explicit (``deliver()``) so tests
  decide the order; knobs: ``duplicate`` (each event twice), ``reorder`` (shuffled, or
  ``reverse``), ``hold(type)`` (delayed until ``release()``), ``drop_next(n)`` (the next n
  deliveries are lost on the way and redelivered by a later ``deliver()``), and
  ``deliver_later(delay_s)``. A non-2xx answer leaves the event pending, as Stripe retries.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.base import LoopbackHandler, LoopbackServer

API_VERSION = "2026-10-28.endive"
PERIOD_S = 30 * 86400
FAULTS = {"500", "500_after", "disconnect", "disconnect_after"}

Obj = dict[str, Any]


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for ``payload`` (Stripe's v1 scheme)."""
    signed = f"{timestamp}.".encode() + payload
    mac = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def decode_form(pairs: list[tuple[str, str]]) -> Obj:
    """Nest Stripe's bracket keys: ``items[0][price]=p`` -> ``{"items": [{"price": "p"}]}``."""
    root: Obj = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+|\[\]", key)
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v) for k, v in node.items()}
    if out and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out


def _bool(value: Any) -> bool:
    return str(value).lower() == "true"


def _error(status: int, message: str, type_: str = "invalid_request_error", **extra: Any) -> Reply:
    return Reply(status, {"error": {"message": message, "type": type_, **extra}})


@dataclass
class Reply:
    status: int
    body: Obj
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One request as the fake saw it (for asserts)."""

    method: str
    path: str
    params: Obj
    idempotency_key: str | None
    replayed: bool = False
    fault: str | None = None


@dataclass
class Delivery:
    """One webhook delivery attempt."""

    event_id: str
    type: str
    status: int  # 0 = dropped on the way / connection error


class StripeFake(LoopbackServer):
    """The fake: start with ``with StripeFake(...) as fake``; ``fake.url`` is the API base."""

    vendor = "stripe"

    def __init__(
        self,
        api_key: str = "sk_test_fake_4242424242",
        webhook_secret: str = "whsec_fake_secret",
        webhook_url: str | None = None,
        clock: Callable[[], float] = time.time,
        seed: int = 7,
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.webhook_url = webhook_url
        self.clock = clock
        self.calls: list[Call] = []
        self.events: list[Obj] = []  # every event created, in creation order
        self.deliveries: list[Delivery] = []
        self.duplicate = False
        self.reorder: bool | str = False  # True = shuffle (seeded), "reverse"
        self._rng = random.Random(seed)
        self._store: dict[str, dict[str, Obj]] = {}
        self._idem: dict[str, tuple[str, Reply]] = {}
        self._faults: dict[str, deque[str]] = {}
        self._pending: list[Obj] = []
        self._held_types: set[str] = set()
        self._held: list[Obj] = []
        self._drop = 0
        self._lock = threading.RLock()
        self._deliver_lock = threading.Lock()
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = []
        self._register()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    # -- state helpers ---------------------------------------------------------------------
    def now(self) -> int:
        return int(self.clock())

    def objects(self, kind: str) -> list[Obj]:
        """Every stored object of ``kind`` (``customer``, ``subscription`` ...), copies."""
        with self._lock:
            return [copy.deepcopy(o) for o in self._store.get(kind, {}).values()]

    def get(self, kind: str, obj_id: str) -> Obj:
        with self._lock:
            return copy.deepcopy(self._store[kind][obj_id])

    def _new(self, kind: str, prefix: str, obj: Obj) -> Obj:
        obj_id = f"{prefix}_{secrets.token_hex(8)}"
        full = {"id": obj_id, "object": kind, "livemode": False, "created": self.now(), **obj}
        self._store.setdefault(kind, {})[obj_id] = full
        return full

    def _find(self, kind: str, obj_id: str) -> Obj | None:
        return self._store.get(kind, {}).get(obj_id)

    def queue_faults(self, path_prefix: str, faults: list[str]) -> None:
        """Apply ``faults`` (``500``, ``500_after``, ``disconnect``, ``disconnect_after``, ``ok``)
        in order to the next requests whose path starts with ``path_prefix``."""
        unknown = set(faults) - FAULTS - {"ok"}
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        with self._lock:
            self._faults.setdefault(path_prefix, deque()).extend(faults)

    def _next_fault(self, path: str) -> str | None:
        with self._lock:
            for prefix, queue in self._faults.items():
                if queue and path.startswith(prefix):
                    fault = queue.popleft()
                    return None if fault == "ok" else fault
        return None

    # -- HTTP dispatch ---------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Any:
        """The reply for one request, or ``"disconnect"``."""
        parts = urlsplit(raw_path)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if body:
            pairs += parse_qsl(body.decode(), keep_blank_values=True)
        params = decode_form(pairs)
        low = {k.lower(): v for k, v in headers.items()}
        key = low.get("idempotency-key") if method == "POST" else None
        call = Call(method, parts.path, params, key)
        with self._lock:
            self.calls.append(call)
        call.fault = self._next_fault(parts.path)
        if call.fault in ("500", "disconnect"):  # refused before executing: nothing stored
            if call.fault == "disconnect":
                return "disconnect"
            return _error(500, "An unknown error occurred", "api_error")
        auth = low.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            given = auth.removeprefix("Bearer ").strip()
            shown = f"{given[:8]}{'*' * 12}{given[-4:]}" if len(given) > 12 else given
            return _error(401, f"Invalid API Key provided: {shown}")
        fingerprint = json.dumps([method, parts.path, params], sort_keys=True)
        with self._lock:
            if key is not None and key in self._idem:
                first_fp, first = self._idem[key]
                if first_fp != fingerprint:
                    return _error(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you "
                        "meant to execute a different request.",
                        "idempotency_error",
                    )
                call.replayed = True
                return Reply(
                    first.status, first.body, {**first.headers, "Idempotent-Replayed": "true"}
                )
            reply = self._route(method, parts.path, params)
            if key is not None:
                self._idem[key] = (fingerprint, reply)
        if call.fault == "disconnect_after":
            return "disconnect"
        if call.fault == "500_after":
            return _error(500, "An unknown error occurred", "api_error")
        return reply

    def _route(self, method: str, path: str, params: Obj) -> Reply:
        for m, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if m == method and match:
                return handler(params, *match.groups())
        return _error(404, f"Unrecognized request URL ({method}: {path}).")

    def _register(self) -> None:
        r = self._routes.append
        oid = r"([A-Za-z0-9_]+)"
        r(("POST", re.compile(r"/v1/products"), self._create_product))
        r(("POST", re.compile(r"/v1/prices"), self._create_price))
        r(("GET", re.compile(r"/v1/prices"), self._list_prices))
        r(("POST", re.compile(r"/v1/customers"), self._create_customer))
        r(("GET", re.compile(r"/v1/customers/search"), self._search_customers))
        r(("GET", re.compile(r"/v1/customers"), self._list_customers))
        r(("POST", re.compile(rf"/v1/customers/{oid}"), self._update_customer))
        r(("POST", re.compile(r"/v1/checkout/sessions"), self._create_session))
        r(("POST", re.compile(r"/v1/billing_portal/sessions"), self._create_portal))
        r(("GET", re.compile(r"/v1/subscriptions"), self._list_subscriptions))
        r(("POST", re.compile(rf"/v1/subscriptions/{oid}"), self._update_subscription))
        r(("DELETE", re.compile(rf"/v1/subscriptions/{oid}"), self._cancel_subscription))
        r(("GET", re.compile(r"/v1/invoices"), self._list_invoices))
        r(("GET", re.compile(r"/v1/events"), lambda p: self._list("event", p)))
        for path, kind in (
            ("products", "product"),
            ("prices", "price"),
            ("customers", "customer"),
            ("checkout/sessions", "checkout.session"),
            ("subscriptions", "subscription"),
            ("invoices", "invoice"),
            ("events", "event"),
        ):
            r(("GET", re.compile(rf"/v1/{path}/{oid}"), self._retriever(kind)))

    def _retriever(self, kind: str) -> Callable[..., Reply]:
        def get(_params: Obj, obj_id: str) -> Reply:
            obj = self._find(kind, obj_id)
            if obj is None:
                return _missing(kind, obj_id)
            return Reply(200, copy.deepcopy(obj))

        return get

    def _list(self, kind: str, params: Obj, keep: Callable[[Obj], bool] = lambda o: True) -> Reply:
        items = [o for o in self._store.get(kind, {}).values() if keep(o)]
        items.sort(key=lambda o: o["created"], reverse=True)
        limit = int(params.get("limit", 10))
        return Reply(
            200,
            {
                "object": "list",
                "data": copy.deepcopy(items[:limit]),
                "has_more": len(items) > limit,
                "url": f"/v1/{kind.replace('.', '/')}s",
            },
        )

    # -- resources -------------------------------------------------------------------------
    def _create_product(self, p: Obj) -> Reply:
        if not p.get("name"):
            return _error(400, "Missing required param: name.", param="name")
        obj = self._new(
            "product",
            "prod",
            {"name": p["name"], "active": True, "metadata": p.get("metadata", {})},
        )
        return Reply(200, copy.deepcopy(obj))

    def _create_price(self, p: Obj) -> Reply:
        if self._find("product", p.get("product", "")) is None:
            return _error(400, f"No such product: '{p.get('product')}'", param="product")
        lookup = p.get("lookup_key")
        if lookup and any(
            x.get("lookup_key") == lookup for x in self._store.get("price", {}).values()
        ):
            return _error(
                400, f"A price with lookup_key {lookup!r} already exists.", param="lookup_key"
            )
        recurring = p.get("recurring")
        obj = self._new(
            "price",
            "price",
            {
                "active": True,
                "currency": p.get("currency", "usd"),
                "unit_amount": int(p.get("unit_amount", 0)),
                "product": p["product"],
                "lookup_key": lookup,
                "type": "recurring" if recurring else "one_time",
                "recurring": (
                    {"interval": recurring.get("interval", "month"), "interval_count": 1}
                    if recurring
                    else None
                ),
                "metadata": p.get("metadata", {}),
            },
        )
        return Reply(200, copy.deepcopy(obj))

    def _list_prices(self, p: Obj) -> Reply:
        keys = p.get("lookup_keys")
        active = p.get("active")
        return self._list(
            "price",
            p,
            lambda o: (
                (keys is None or o.get("lookup_key") in keys)
                and (active is None or o["active"] == _bool(active))
            ),
        )

    def _create_customer(self, p: Obj) -> Reply:
        obj = self._new(
            "customer",
            "cus",
            {"email": p.get("email"), "name": p.get("name"), "metadata": p.get("metadata", {})},
        )
        return Reply(200, copy.deepcopy(obj))

    def _update_customer(self, p: Obj, cus_id: str) -> Reply:
        obj = self._find("customer", cus_id)
        if obj is None:
            return _missing("customer", cus_id)
        for k in ("email", "name"):
            if k in p:
                obj[k] = p[k]
        obj["metadata"] = {**obj["metadata"], **p.get("metadata", {})}
        return Reply(200, copy.deepcopy(obj))

    def _list_customers(self, p: Obj) -> Reply:
        email = p.get("email")
        return self._list("customer", p, lambda o: email is None or o.get("email") == email)

    def _search_customers(self, p: Obj) -> Reply:
        # the two query forms we use: email:'x' and metadata['k']:'v'
        q = p.get("query", "")
        m = re.fullmatch(r"\s*(email|metadata\['([^']+)'\])\s*:\s*'([^']*)'\s*", q)
        if m is None:
            return _error(400, f"Invalid search query: {q!r}", param="query")
        field_, meta_key, value = m.groups()

        def keep(o: Obj) -> bool:
            if meta_key:
                return bool(o["metadata"].get(meta_key) == value)
            return bool(o.get("email") == value)

        reply = self._list("customer", p, keep)
        reply.body.update(
            {"object": "search_result", "next_page": None, "url": "/v1/customers/search"}
        )
        return reply

    def _create_session(self, p: Obj) -> Reply:
        if p.get("mode") != "subscription":
            return _error(400, "The fake supports mode=subscription only.", param="mode")
        items = p.get("line_items") or []
        if not items:
            return _error(400, "Missing required param: line_items.", param="line_items")
        for item in items:
            if self._find("price", item.get("price", "")) is None:
                return _error(400, f"No such price: '{item.get('price')}'", param="line_items")
        if not p.get("success_url"):
            return _error(400, "Missing required param: success_url.", param="success_url")
        customer = p.get("customer")
        if customer and self._find("customer", customer) is None:
            return _missing("customer", customer)
        obj = self._new(
            "checkout.session",
            "cs_test",
            {
                "mode": "subscription",
                "status": "open",
                "payment_status": "unpaid",
                "customer": customer,
                "customer_email": p.get("customer_email"),
                "client_reference_id": p.get("client_reference_id"),
                "success_url": p["success_url"],
                "cancel_url": p.get("cancel_url"),
                "metadata": p.get("metadata", {}),
                "subscription": None,
                "expires_at": self.now() + 86400,
                "_line_items": items,
                "_subscription_metadata": (p.get("subscription_data") or {}).get("metadata", {}),
            },
        )
        obj["url"] = f"{self.url}/c/pay/{obj['id']}"
        return Reply(200, _public(obj))

    def _create_portal(self, p: Obj) -> Reply:
        customer = p.get("customer", "")
        if self._find("customer", customer) is None:
            return _missing("customer", customer)
        obj = self._new(
            "billing_portal.session",
            "bps",
            {"customer": customer, "return_url": p.get("return_url")},
        )
        obj["url"] = f"{self.url}/p/session/{obj['id']}"
        return Reply(200, copy.deepcopy(obj))

    def _list_subscriptions(self, p: Obj) -> Reply:
        customer, status = p.get("customer"), p.get("status")
        return self._list(
            "subscription",
            p,
            lambda o: (
                (customer is None or o["customer"] == customer)
                and (status in (None, "all") or o["status"] == status)
                and (status is not None or o["status"] != "canceled")
            ),
        )

    def _update_subscription(self, p: Obj, sub_id: str) -> Reply:
        sub = self._find("subscription", sub_id)
        if sub is None:
            return _missing("subscription", sub_id)
        if sub["status"] in ("canceled", "incomplete_expired"):
            return _error(
                400,
                "A canceled subscription can only update its cancellation_details and metadata.",
            )
        before = copy.deepcopy(sub)
        if "cancel_at_period_end" in p:
            sub["cancel_at_period_end"] = _bool(p["cancel_at_period_end"])
            sub["cancel_at"] = _period_end(sub) if sub["cancel_at_period_end"] else None
        if "metadata" in p:
            sub["metadata"] = {**sub["metadata"], **p["metadata"]}
        self._emit("customer.subscription.updated", sub, _changed(before, sub))
        return Reply(200, copy.deepcopy(sub))

    def _cancel_subscription(self, _p: Obj, sub_id: str) -> Reply:
        sub = self._find("subscription", sub_id)
        if sub is None:
            return _missing("subscription", sub_id)
        if sub["status"] == "canceled":
            return _error(400, f"No such subscription: '{sub_id}'", code="resource_missing")
        self._end(sub)
        return Reply(200, copy.deepcopy(sub))

    def _list_invoices(self, p: Obj) -> Reply:
        customer, sub_id = p.get("customer"), p.get("subscription")
        return self._list(
            "invoice",
            p,
            lambda o: (
                (customer is None or o["customer"] == customer)
                and (sub_id is None or _invoice_sub(o) == sub_id)
            ),
        )

    # -- lifecycle control (what the customer and Stripe's billing engine do) ----------------
    def complete_checkout(self, session_id: str) -> str:
        """The customer paid: a customer (if the session had none), an active subscription, a
        paid invoice and the three events. Returns the subscription id."""
        with self._lock:
            cs = self._store["checkout.session"][session_id]
            if cs["status"] != "open":
                raise ValueError(f"checkout session {session_id} is {cs['status']}, not open")
            if not cs["customer"]:
                cs["customer"] = self._new(
                    "customer", "cus", {"email": cs["customer_email"], "name": None, "metadata": {}}
                )["id"]
            now = self.now()
            sub = self._new(
                "subscription",
                "sub",
                {
                    "customer": cs["customer"],
                    "status": "active",
                    "cancel_at_period_end": False,
                    "cancel_at": None,
                    "canceled_at": None,
                    "ended_at": None,
                    "start_date": now,
                    "currency": "usd",
                    "metadata": dict(cs["_subscription_metadata"]),
                    "latest_invoice": None,
                },
            )
            sub["items"] = {
                "object": "list",
                "data": [
                    {
                        "id": f"si_{secrets.token_hex(8)}",
                        "object": "subscription_item",
                        "price": copy.deepcopy(self._store["price"][item["price"]]),
                        "quantity": int(item.get("quantity", 1)),
                        "current_period_start": now,
                        "current_period_end": now + PERIOD_S,
                        "subscription": sub["id"],
                        "created": now,
                    }
                    for item in cs["_line_items"]
                ],
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sub['id']}",
            }
            invoice = self._invoice(sub, paid=True)
            cs.update(status="complete", payment_status="paid", subscription=sub["id"])
            self._emit("checkout.session.completed", _public(cs))
            self._emit("customer.subscription.created", sub)
            self._emit("invoice.paid", invoice)
            return str(sub["id"])

    def fail_payment(self, sub_id: str) -> None:
        """A renewal charge failed: ``past_due``, an open invoice, and the events."""
        with self._lock:
            sub = self._store["subscription"][sub_id]
            before = copy.deepcopy(sub)
            invoice = self._invoice(sub, paid=False)
            sub["status"] = "past_due"
            self._emit("invoice.payment_failed", invoice)
            self._emit("customer.subscription.updated", sub, _changed(before, sub))

    def recover_payment(self, sub_id: str) -> None:
        """A retry of the open invoice succeeded: ``active`` again."""
        with self._lock:
            sub = self._store["subscription"][sub_id]
            before = copy.deepcopy(sub)
            invoice = self._store["invoice"][sub["latest_invoice"]]
            invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
            sub["status"] = "active"
            self._emit("invoice.paid", invoice)
            self._emit("customer.subscription.updated", sub, _changed(before, sub))

    def exhaust_retries(self, sub_id: str, final: str = "canceled") -> None:
        """Every retry failed: the subscription ends ``canceled`` (deleted event) or ``unpaid``."""
        if final not in ("canceled", "unpaid"):
            raise ValueError("final must be 'canceled' or 'unpaid'")
        with self._lock:
            sub = self._store["subscription"][sub_id]
            if final == "canceled":
                self._end(sub)
            else:
                before = copy.deepcopy(sub)
                sub["status"] = "unpaid"
                self._emit("customer.subscription.updated", sub, _changed(before, sub))

    def change_price(self, sub_id: str, lookup_key: str) -> None:
        """The customer switched plans in the portal: the item's price becomes ``lookup_key``'s."""
        with self._lock:
            sub = self._store["subscription"][sub_id]
            price = next(
                p for p in self._store["price"].values() if p.get("lookup_key") == lookup_key
            )
            before = copy.deepcopy(sub)
            sub["items"]["data"][0]["price"] = copy.deepcopy(price)
            self._emit("customer.subscription.updated", sub, _changed(before, sub))

    def advance_period(self, sub_id: str) -> None:
        """The period ended: canceled if ``cancel_at_period_end``, else renewed (paid invoice)."""
        with self._lock:
            sub = self._store["subscription"][sub_id]
            if sub["cancel_at_period_end"]:
                self._end(sub)
                return
            before = copy.deepcopy(sub)
            for item in sub["items"]["data"]:
                item["current_period_start"] = item["current_period_end"]
                item["current_period_end"] += PERIOD_S
            invoice = self._invoice(sub, paid=True)
            self._emit("invoice.paid", invoice)
            self._emit("customer.subscription.updated", sub, _changed(before, sub))

    def _end(self, sub: Obj) -> None:
        now = self.now()
        sub.update(status="canceled", canceled_at=now, ended_at=now)
        self._emit("customer.subscription.deleted", sub)

    def _invoice(self, sub: Obj, paid: bool) -> Obj:
        amount = sum(
            int(i["price"]["unit_amount"]) * int(i["quantity"]) for i in sub["items"]["data"]
        )
        item = sub["items"]["data"][0]
        invoice = self._new(
            "invoice",
            "in",
            {
                "customer": sub["customer"],
                "status": "paid" if paid else "open",
                "currency": "usd",
                "amount_due": amount,
                "amount_paid": amount if paid else 0,
                "amount_remaining": 0 if paid else amount,
                "attempt_count": 1,
                "billing_reason": "subscription_cycle"
                if sub["latest_invoice"]
                else "subscription_create",
                "period_start": item["current_period_start"],
                "period_end": item["current_period_end"],
                "parent": {
                    "type": "subscription_details",
                    "quote_details": None,
                    "subscription_details": {
                        "subscription": sub["id"],
                        "metadata": dict(sub["metadata"]),
                    },
                },
            },
        )
        sub["latest_invoice"] = invoice["id"]
        return invoice

    # -- events and webhook delivery ---------------------------------------------------------
    def _emit(self, type_: str, obj: Obj, previous: Obj | None = None) -> Obj:
        data: Obj = {"object": copy.deepcopy(obj)}
        if previous:
            data["previous_attributes"] = previous
        event = self._new(
            "event",
            "evt",
            {
                "type": type_,
                "api_version": API_VERSION,
                "data": data,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
            },
        )
        self.events.append(event)
        target = self._held if type_ in self._held_types else self._pending
        target.append(event)
        return event

    def hold(self, *types: str) -> None:
        """Delay events of these types: kept back from ``deliver()`` until ``release()``."""
        with self._lock:
            self._held_types.update(types)

    def release(self) -> None:
        """Stop holding; the held events join the pending ones (delivered next)."""
        with self._lock:
            self._held_types.clear()
            self._pending.extend(self._held)
            self._held.clear()

    def drop_next(self, n: int = 1) -> None:
        """The next ``n`` delivery attempts are lost on the way; the events stay pending."""
        with self._lock:
            self._drop += n

    def pending(self) -> list[Obj]:
        with self._lock:
            return list(self._pending)

    def signed(
        self, event: Obj, secret: str | None = None, timestamp: int | None = None
    ) -> tuple[bytes, str]:
        """The body and ``Stripe-Signature`` header Stripe would send for ``event``."""
        body = json.dumps(event, indent=2).encode()
        ts = self.now() if timestamp is None else timestamp
        return body, sign(body, secret or self.webhook_secret, ts)

    def post_webhook(self, body: bytes, signature: str | None) -> int:
        """POST raw bytes to the webhook URL; the HTTP status (0 on a connection error)."""
        assert self.webhook_url, "set webhook_url first"
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        req = urllib.request.Request(self.webhook_url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except OSError:
            return 0

    def deliver(self) -> list[Delivery]:
        """Send every pending event once (knobs applied); events answered 2xx leave the queue,
        the rest stay pending for the next call (Stripe's retries)."""
        with self._deliver_lock:
            with self._lock:
                batch = list(self._pending)
                self._pending.clear()
                if self.reorder == "reverse":
                    batch.reverse()
                elif self.reorder:
                    self._rng.shuffle(batch)
            out: list[Delivery] = []
            retry: list[Obj] = []
            for event in batch:
                ok = False
                for _ in range(2 if self.duplicate else 1):
                    with self._lock:
                        dropped = self._drop > 0
                        self._drop -= 1 if dropped else 0
                    status = 0 if dropped else self.post_webhook(*self.signed(event))
                    out.append(Delivery(event["id"], event["type"], status))
                    ok = ok or 200 <= status < 300
                if not ok:
                    retry.append(event)
            with self._lock:
                self._pending[:0] = retry
                self.deliveries.extend(out)
            return out

    def deliver_later(self, delay_s: float) -> threading.Timer:
        """Deliver the pending events ``delay_s`` seconds from now, from another thread."""
        timer = threading.Timer(delay_s, self.deliver)
        timer.daemon = True
        timer.start()
        return timer


def _missing(kind: str, obj_id: str) -> Reply:
    return _error(
        404, f"No such {kind.split('.')[-1]}: '{obj_id}'", code="resource_missing", param="id"
    )


def _public(obj: Obj) -> Obj:
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


def _period_end(sub: Obj) -> int:
    return int(sub["items"]["data"][0]["current_period_end"])


def _invoice_sub(invoice: Obj) -> str | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return details.get("subscription")


def _changed(before: Obj, after: Obj) -> Obj:
    """``previous_attributes``: the old values of the top-level fields that changed."""
    return {k: v for k, v in before.items() if after.get(k) != v}


class _Handler(LoopbackHandler):
    fake: StripeFake

    def _serve(self) -> None:
        body = self._body()
        try:
            out = self.fake.handle(self.command, self.path, dict(self.headers.items()), body)
        except Exception as err:  # a bug in the fake: answer like Stripe's 500
            out = _error(500, f"fake error {err!r}", "api_error")
        if out == "disconnect":
            self._drop()
            return
        assert isinstance(out, Reply)
        headers = {
            "Content-Type": "application/json",
            "Request-Id": f"req_{secrets.token_hex(7)}",
            "Stripe-Version": API_VERSION,
            **out.headers,
        }
        self._reply(out.status, headers, json.dumps(out.body, indent=2).encode())
