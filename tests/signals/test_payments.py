# ruff: noqa: F811  (the fixtures imported below are redefined as test parameters, as pytest wants)
"""Subscriptions and payments against the stateful Stripe fake, with the real ``stripe`` client.

Every webhook here is a real signed POST from the fake to the service's starlette endpoint
under uvicorn, and every re-fetch is a real ``StripeClient`` call to the fake: the tests prove
the handler's promises (dedupe by event id, re-fetch instead of trusting order or payload, 400
and nothing stored on a bad signature, idempotent creates under retries) and the lifecycle
through ``past_due`` and the grace period to revoked access and back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from signals.db import access, payment_events, subscriptions
from signals.model import Channel
from tests.signals.pay_fixtures import StripeHarness, build_harness, stripe_env  # noqa: F401

UID = "5001"


def subscribe(h: StripeHarness, uid: str = UID, plan: str = "realtime") -> tuple[str, str]:
    """Register, check out and pay; returns (subscriber id, Stripe subscription id)."""
    sid = h.service.register(Channel.TELEGRAM, uid, chat_id=uid)
    link = h.service.checkout(sid, plan)
    assert link.url.startswith(h.fake.url) and link.session_id.startswith("cs_test_")
    return sid, h.fake.complete_checkout(link.session_id)


def statuses(deliveries: list) -> list[int]:
    return [d.status for d in deliveries]


def test_checkout_complete_webhook_grants_access(stripe_env: StripeHarness) -> None:
    h = stripe_env
    sid, sub_id = subscribe(h)
    session = h.fake.objects("checkout.session")[0]
    assert session["client_reference_id"] == sid and session["customer"].startswith("cus_")
    customer = h.fake.get("customer", session["customer"])
    assert customer["metadata"] == {"subscriber_id": sid}
    assert statuses(h.fake.deliver()) == [200, 200, 200]
    row = h.sub_row(sub_id)
    assert (row.status, row.plan_id, row.subscriber_id, row.provider) == (
        "active",
        "realtime",
        sid,
        "stripe",
    )
    period_end = h.fake.get("subscription", sub_id)["items"]["data"][0]["current_period_end"]
    assert (
        int(row.current_period_end.replace(tzinfo=None).timestamp() - time.timezone) == period_end
    )
    [view] = h.service.status(sid)
    assert view.entitled and view.status == "active" and view.grace_until is None
    assert h.access.actions("grant") == [("grant", "realtime", UID)]
    # the subscriber joins through the link: the next pass records the membership, nothing else
    h.access.join("realtime", UID)
    report = asyncio.run(h.service.reconciler.reconcile_all())  # type: ignore[union-attr]
    assert [(c.action, c.plan_id) for c in report.changes] == [("joined", "realtime")]
    assert asyncio.run(h.service.reconciler.reconcile_all()).changes == []  # type: ignore[union-attr]
    # the portal link is Stripe's, for the stored customer
    assert h.service.portal_url(sid).startswith(f"{h.fake.url}/p/session/")


def test_duplicated_events_are_processed_once(stripe_env: StripeHarness) -> None:
    h = stripe_env
    h.fake.duplicate = True
    _, sub_id = subscribe(h)
    out = h.fake.deliver()
    assert len(out) == 6 and statuses(out) == [200] * 6
    assert h.count(payment_events) == 3
    fetches = [
        c for c in h.fake.calls if c.method == "GET" and c.path == f"/v1/subscriptions/{sub_id}"
    ]
    assert len(fetches) == 3  # one re-fetch per distinct event, none for the copies
    assert len(h.access.actions("grant")) == 1
    # and the handler says so itself
    event = h.fake.events[0]
    body, sig = h.fake.signed(event)
    assert h.fake.post_webhook(body, sig) == 200
    assert h.count(payment_events) == 3


def test_reordered_events_end_in_the_true_state(stripe_env: StripeHarness) -> None:
    h = stripe_env
    _, sub_id = subscribe(h)
    h.fake.fail_payment(sub_id)
    h.fake.reorder = "reverse"  # updated(past_due) and payment_failed first, created last
    order = [d.type for d in h.fake.deliver()]
    assert order[0] == "customer.subscription.updated" and order[-1] == "checkout.session.completed"
    row = h.sub_row(sub_id)
    assert row.status == "past_due" and row.past_due_since is not None
    # recovery delivered before the failure it recovers from: still the provider's truth
    h.fake.recover_payment(sub_id)
    h.fake.hold("invoice.payment_failed")
    h.fake.deliver()
    assert h.sub_row(sub_id).status == "active"
    h.fake.release()
    h.fake.fail_payment(sub_id)  # nothing pending about it yet; and then a second failure
    h.fake.recover_payment(sub_id)
    h.fake.reorder = True  # shuffled
    h.fake.deliver()
    row = h.sub_row(sub_id)
    assert row.status == "active" and row.past_due_since is None
    assert h.fake.get("subscription", sub_id)["status"] == "active"


def test_late_invoice_paid_after_cancel_does_not_resurrect(stripe_env: StripeHarness) -> None:
    h = stripe_env
    h.fake.hold("invoice.paid")
    _, sub_id = subscribe(h)
    h.fake.deliver()
    assert h.sub_row(sub_id).status == "active"
    h.fake.exhaust_retries(sub_id, "canceled")
    h.fake.deliver()
    assert h.sub_row(sub_id).status == "canceled"
    assert h.access.actions("revoke") == [("revoke", "realtime", UID)]
    h.fake.release()  # the first invoice.paid arrives late
    assert [d.type for d in h.fake.deliver()] == ["invoice.paid"]
    assert h.sub_row(sub_id).status == "canceled"
    assert len(h.access.actions("grant")) == 1  # no second grant


def test_a_signed_event_payload_is_not_trusted(stripe_env: StripeHarness) -> None:
    h = stripe_env
    _, sub_id = subscribe(h)
    h.fake.fail_payment(sub_id)
    h.fake.deliver()
    assert h.sub_row(sub_id).status == "past_due"
    # a genuine, correctly signed event whose payload says "active" (an old state)
    created = next(e for e in h.fake.events if e["type"] == "customer.subscription.created")
    assert created["data"]["object"]["status"] == "active"
    stale = {**created, "id": "evt_stale_copy"}
    assert h.fake.post_webhook(*h.fake.signed(stale)) == 200
    assert h.sub_row(sub_id).status == "past_due"  # the provider's truth, re-fetched


@pytest.mark.parametrize("how", ["wrong_secret", "missing", "tampered", "old_timestamp"])
def test_bad_signature_is_400_and_stores_nothing(stripe_env: StripeHarness, how: str) -> None:
    h = stripe_env
    h.fake.hold(
        *{
            e
            for e in ("checkout.session.completed", "customer.subscription.created", "invoice.paid")
        }
    )
    subscribe(h)
    event = h.fake.events[1]
    if how == "wrong_secret":
        body, sig = h.fake.signed(event, secret="whsec_not_the_one")
    elif how == "missing":
        body, sig = json.dumps(event).encode(), None
    elif how == "tampered":
        body, sig = h.fake.signed(event)
        body = body.replace(b'"active"', b'"trialing"')
    else:  # signed correctly, but 301 s ago (tolerance 300 s)
        body, sig = h.fake.signed(event, timestamp=int(time.time()) - 301)
    assert h.fake.post_webhook(body, sig) == 400
    assert h.count(payment_events) == 0 and h.count(subscriptions) == 0
    assert h.access.calls == []
    # the same event, correctly signed and fresh, is accepted
    assert h.fake.post_webhook(*h.fake.signed(event)) == 200
    assert h.count(subscriptions) == 1


@pytest.mark.parametrize("fault", ["500", "500_after", "disconnect_after"])
def test_create_retried_with_the_same_key_makes_one_object(
    stripe_env: StripeHarness, fault: str
) -> None:
    h = stripe_env
    sid = h.service.register(Channel.TELEGRAM, UID)
    h.fake.queue_faults("/v1/customers", [fault])
    h.fake.queue_faults("/v1/checkout/sessions", [fault])
    link = h.service.checkout(sid, "realtime")
    assert len(h.fake.objects("customer")) == 1
    assert [s["id"] for s in h.fake.objects("checkout.session")] == [link.session_id]
    for path in ("/v1/customers", "/v1/checkout/sessions"):
        calls = [c for c in h.fake.calls if c.path == path and c.method == "POST"]
        assert len(calls) == 2 and calls[0].fault == fault
        assert calls[0].idempotency_key == calls[1].idempotency_key
        assert calls[1].replayed == (fault != "500")  # executed before the failure: replayed
    first = next(c for c in h.fake.calls if c.path == "/v1/customers")
    assert first.idempotency_key == f"signals-customer-{sid}"  # derived from our id


def test_same_key_other_params_is_an_idempotency_error(stripe_env: StripeHarness) -> None:
    import stripe

    h = stripe_env
    h.admin.v1.customers.create({"email": "a@example.com"}, {"idempotency_key": "k1"})
    with pytest.raises(stripe.IdempotencyError, match="same parameters"):
        h.admin.v1.customers.create({"email": "b@example.com"}, {"idempotency_key": "k1"})
    assert len(h.fake.objects("customer")) == 1


def test_payment_failure_grace_revoke_and_resubscribe(stripe_env: StripeHarness) -> None:
    h = stripe_env
    sid, sub_id = subscribe(h)
    h.fake.deliver()
    h.access.join("realtime", UID)
    h.fake.fail_payment(sub_id)
    h.fake.deliver()
    row = h.sub_row(sub_id)
    assert row.status == "past_due"
    [view] = h.service.status(sid)
    grace_days = h.service.plan("realtime").grace_days
    grace_end = h.clock.now + dt.timedelta(days=grace_days)
    assert view.entitled and view.grace_until == grace_end
    assert h.access.actions("revoke") == []  # entitled during the grace period
    h.clock.advance(days=2)
    h.fake.fail_payment(sub_id)  # Stripe's retry fails too: the grace period does not restart
    h.fake.deliver()
    assert h.service.status(sid)[0].grace_until == grace_end
    h.clock.advance(days=grace_days - 2, seconds=-1)
    assert asyncio.run(h.service.reconciler.reconcile_all()).changes == []  # type: ignore[union-attr]
    h.clock.advance(seconds=2)  # the grace period is over
    report = asyncio.run(h.service.reconciler.reconcile_all())  # type: ignore[union-attr]
    assert [(c.action, c.subscriber_id) for c in report.changes] == [("revoke", sid)]
    assert ("realtime", UID) not in h.access.members
    assert not h.service.status(sid)[0].entitled
    with h.engine.connect() as conn:
        assert conn.execute(sa.select(access.c.state)).scalar_one() == "removed"
    # Stripe gives up; the subscriber pays again with a new subscription
    h.fake.exhaust_retries(sub_id, "canceled")
    h.fake.deliver()
    link = h.service.checkout(sid, "realtime")
    new_sub = h.fake.complete_checkout(link.session_id)
    assert new_sub != sub_id
    h.fake.deliver()
    assert h.sub_row(new_sub).status == "active"
    assert len(h.access.actions("grant")) == 2
    [view] = h.service.status(sid)
    assert view.entitled and view.status == "active"


def test_drop_delay_and_redelivery(stripe_env: StripeHarness) -> None:
    h = stripe_env
    _, sub_id = subscribe(h)
    h.fake.drop_next(3)  # all three lost on the way
    assert statuses(h.fake.deliver()) == [0, 0, 0]
    assert h.count(subscriptions) == 0 and len(h.fake.pending()) == 3
    timer = h.fake.deliver_later(0.2)  # Stripe's retry, a little later
    timer.join(10)
    assert statuses(h.fake.deliveries[-3:]) == [200, 200, 200]
    assert h.sub_row(sub_id).status == "active" and h.fake.pending() == []


def test_refetch_failure_is_503_and_redelivered(stripe_env: StripeHarness) -> None:
    h = stripe_env
    _, sub_id = subscribe(h)
    h.fake.queue_faults(f"/v1/subscriptions/{sub_id}", ["500"] * 3)  # the first fetch + 2 retries
    out = h.fake.deliver()
    assert out[0].status == 503 and statuses(out[1:]) == [200, 200]
    assert h.fake.pending()[0]["type"] == "checkout.session.completed"
    assert statuses(h.fake.deliver()) == [200]  # redelivered: processed now, not a duplicate
    with h.engine.connect() as conn:
        done = conn.execute(sa.select(payment_events.c.processed_at)).scalars().all()
    assert len(done) == 3 and all(t is not None for t in done)


def test_unsubscribe_keeps_access_to_period_end(stripe_env: StripeHarness) -> None:
    h = stripe_env
    sid, sub_id = subscribe(h)
    h.fake.deliver()
    answer = h.service.unsubscribe(sid, "realtime")
    assert answer.startswith("Your realtime subscription ends on ")
    assert h.fake.get("subscription", sub_id)["cancel_at_period_end"] is True
    row = h.sub_row(sub_id)
    assert row.cancel_at_period_end and row.status == "active"
    h.fake.deliver()  # customer.subscription.updated
    assert h.access.actions("revoke") == []
    h.fake.advance_period(sub_id)  # the period ends: Stripe deletes it
    h.fake.deliver()
    assert h.sub_row(sub_id).status == "canceled"
    assert h.access.actions("revoke") == [("revoke", "realtime", UID)]
    assert h.service.unsubscribe(sid, "realtime") == "You have no realtime subscription to cancel."


@pytest.fixture
def stripe_pg(tmp_path: Path, postgres_url: str) -> Iterator[StripeHarness]:
    yield from build_harness(tmp_path, {"ALPACA_IMPROVED_DATABASE_URL": postgres_url})


def test_postgres_service_lifecycle(stripe_pg: StripeHarness) -> None:
    h = stripe_pg
    assert h.engine.dialect.name == "postgresql"
    h.fake.duplicate = True
    sid, sub_id = subscribe(h)
    h.fake.deliver()
    assert h.count(payment_events) == 3 and h.sub_row(sub_id).status == "active"
    h.fake.fail_payment(sub_id)
    h.fake.reorder = "reverse"
    h.fake.deliver()
    row = h.sub_row(sub_id)
    assert row.status == "past_due" and row.past_due_since is not None
    h.clock.advance(days=4)
    report = asyncio.run(h.service.reconciler.reconcile_all())  # type: ignore[union-attr]
    assert [c.action for c in report.changes] == ["revoke"]
    assert not h.service.status(sid)[0].entitled


def test_concurrent_copies_of_one_event_grant_once(stripe_env: StripeHarness) -> None:
    from concurrent.futures import ThreadPoolExecutor

    h = stripe_env
    h.fake.hold("checkout.session.completed", "customer.subscription.created", "invoice.paid")
    _, sub_id = subscribe(h)
    body, sig = h.fake.signed(h.fake.events[1])
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda _: h.fake.post_webhook(body, sig), range(6)))
    assert codes == [200] * 6
    assert h.count(payment_events) == 1 and h.sub_row(sub_id).status == "active"
    assert len(h.access.actions("grant")) == 1


def test_no_secret_reaches_the_logs(
    stripe_env: StripeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    h = stripe_env
    caplog.set_level(logging.DEBUG)
    sid, sub_id = subscribe(h)
    h.fake.queue_faults("/v1/subscriptions/", ["disconnect"])  # a retried fetch logs too
    h.fake.deliver()
    h.fake.post_webhook(*h.fake.signed(h.fake.events[0], secret="whsec_wrong_one"))
    h.service.unsubscribe(sid, "realtime")
    assert h.sub_row(sub_id).cancel_at_period_end
    assert caplog.records  # the client and the handler did log
    for secret in (h.fake.api_key, h.fake.webhook_secret, "https://t.me/+link"):
        assert secret not in caplog.text


def test_plan_switch_in_the_portal_moves_access(stripe_env: StripeHarness) -> None:
    h = stripe_env
    sid, sub_id = subscribe(h)
    h.fake.deliver()
    h.fake.change_price(sub_id, "eod")
    h.fake.deliver()
    assert h.sub_row(sub_id).plan_id == "eod"
    assert h.access.calls[-2:] == [("grant", "eod", UID), ("revoke", "realtime", UID)]
    assert [v.plan_id for v in h.service.status(sid)] == ["eod"]


def test_unpaid_after_retries_and_refresh_without_webhooks(stripe_env: StripeHarness) -> None:
    h = stripe_env
    sid, sub_id = subscribe(h)
    h.fake.deliver()
    # every later webhook is lost for good (endpoint misconfigured for days)
    h.fake.fail_payment(sub_id)
    h.fake.exhaust_retries(sub_id, "unpaid")
    h.fake.drop_next(100)
    h.fake.deliver()
    assert h.sub_row(sub_id).status == "active"  # nothing arrived
    assert h.service.refresh_subscriptions() == [sid]
    assert h.sub_row(sub_id).status == "unpaid"
    assert h.service.refresh_subscriptions() == []  # nothing changed since
    report = asyncio.run(h.service.reconciler.reconcile_all())  # type: ignore[union-attr]
    assert [c.action for c in report.changes] == ["revoke"]
    assert not h.service.status(sid)[0].entitled


def test_event_about_a_missing_subscription_is_dropped_not_retried(
    stripe_env: StripeHarness,
) -> None:
    h = stripe_env
    subscribe(h)
    forged = {**h.fake.events[1], "id": "evt_ghost"}
    forged["data"] = {"object": {**forged["data"]["object"], "id": "sub_does_not_exist"}}
    assert h.fake.post_webhook(*h.fake.signed(forged)) == 200  # Stripe must not retry it
    with h.engine.connect() as conn:
        done = conn.execute(sa.select(payment_events.c.processed_at)).scalar_one()
    assert done is not None and h.count(subscriptions) == 0
