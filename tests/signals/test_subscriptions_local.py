"""The subscription service with the embedded local provider (no keys), the plans file, and the
Stripe provider's configuration.

The local provider runs the same lifecycle as Stripe through the same handler: its events are
re-fetched from its own tables, deduplicated by id, and drive the same access reconciler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from starlette.applications import Starlette

from signals.access import AccessReconciler
from signals.db import make_engine
from signals.errors import ConfigError, SignalsError
from signals.local.uvicorn_thread import UvicornThread
from signals.model import Channel
from signals.payments.base import WebhookError
from signals.payments.config import make_provider
from signals.payments.local import LocalProvider
from signals.payments.stripe_provider import StripeProvider
from signals.subscriptions import (
    PLANS_ENV,
    SubscriptionService,
    build_service,
    checkout_routes,
    default_plans,
    parse_plans,
    plans_path,
    resolve_plans,
)
from tests.fakes.stripe_api import StripeFake
from tests.signals.pay_fixtures import Clock, RecordingAccess


def local_service(home: Path) -> tuple[SubscriptionService, LocalProvider, RecordingAccess, Clock]:
    clock = Clock()
    engine = make_engine(home, {})
    provider = make_provider(engine, {}, clock=clock)
    assert isinstance(provider, LocalProvider)
    access = RecordingAccess()
    reconciler = AccessReconciler(engine, [access], clock=clock)
    return (
        SubscriptionService(engine, provider, default_plans(), reconciler, clock),
        provider,
        access,
        clock,
    )


def test_local_provider_runs_the_whole_lifecycle_without_keys(tmp_path: Path) -> None:
    svc, local, access, clock = local_service(tmp_path)
    sid = svc.register(Channel.TELEGRAM, "7001", chat_id="7001")
    link = svc.checkout(sid, "realtime")
    assert link.url == f"http://127.0.0.1:8080/local/checkout/{link.session_id}"
    events = local.complete(link.session_id)
    assert [e.type for e in events] == [
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
    ]
    outs = asyncio.run(svc.apply_local(events))
    assert [o.status for o in outs] == ["active"] * 3
    assert access.actions("grant") == [("grant", "realtime", "7001")]
    # the same events again (a double click on the confirm page's callback): no-ops
    assert all(o.duplicate for o in asyncio.run(svc.apply_local(events)))
    with pytest.raises(SignalsError, match="already complete"):
        local.complete(link.session_id)
    with pytest.raises(SignalsError, match="already have the realtime plan"):
        svc.checkout(sid, "realtime")
    access.join("realtime", "7001")
    [ref] = {e.object_ref for e in events}
    assert ref is not None
    asyncio.run(svc.apply_local(local.fail_payment(ref)))
    [view] = svc.status(sid)
    assert view.status == "past_due" and view.entitled
    assert view.grace_until == clock.now + dt.timedelta(days=3)
    clock.advance(days=3, seconds=1)
    report = asyncio.run(svc.reconciler.reconcile_all())  # type: ignore[union-attr]
    assert [c.action for c in report.changes] == ["revoke"]
    assert not svc.status(sid)[0].entitled
    # a past_due subscriber may pay again (a new subscription); the old one is canceled
    asyncio.run(svc.apply_local(local.cancel(ref)))
    link2 = svc.checkout(sid, "realtime")
    asyncio.run(svc.apply_local(local.complete(link2.session_id)))
    assert len(access.actions("grant")) == 2 and svc.status(sid)[0].entitled


def test_local_recover_unsubscribe_and_period_end(tmp_path: Path) -> None:
    svc, local, access, _ = local_service(tmp_path)
    sid = svc.register(Channel.DISCORD, "123456789012345678")
    assert svc.register(Channel.DISCORD, "123456789012345678") == sid  # same subscriber
    link = svc.checkout(sid, "eod")
    events = local.complete(link.session_id)
    asyncio.run(svc.apply_local(events))
    ref = events[1].object_ref
    assert ref is not None
    asyncio.run(svc.apply_local(local.fail_payment(ref)))
    asyncio.run(svc.apply_local(local.recover(ref)))
    assert svc.status(sid)[0].status == "active" and svc.status(sid)[0].grace_until is None
    answer = svc.unsubscribe(sid, "eod")
    assert answer.startswith("Your eod subscription ends on ")
    assert svc.status(sid)[0].entitled  # until the period ends
    asyncio.run(svc.apply_local(local.advance_period(ref)))
    assert svc.status(sid)[0].status == "canceled"
    assert svc.unsubscribe(sid, "eod") == "You have no eod subscription to cancel."
    # no Discord user id on a telegram-only platform list: nothing granted or revoked
    assert access.calls == []
    with pytest.raises(WebhookError, match="no webhooks"):
        local.parse_webhook(b"{}", {})


def test_checkout_errors_are_one_line(tmp_path: Path) -> None:
    svc, _, _, _ = local_service(tmp_path)
    with pytest.raises(SignalsError, match=r"unknown plan 'gold'; the plans are: realtime, eod"):
        svc.checkout("nobody", "gold")
    with pytest.raises(SignalsError, match="unknown subscriber 'nobody'"):
        svc.checkout("nobody", "realtime")


def plans_json(**change: object) -> str:
    plans = [dataclasses.asdict(p) for p in default_plans()]
    plans[1].update(change)
    return json.dumps({"plans": plans})


def test_plans_file_round_trip_and_location(tmp_path: Path) -> None:
    assert parse_plans(plans_json(), "x.json") == default_plans()
    assert plans_path(tmp_path, {}) == tmp_path / "signals" / "plans.json"
    assert resolve_plans(tmp_path, {}) == default_plans()  # no file: the demo's plans
    with pytest.raises(ConfigError, match="plans.json cannot be read"):
        resolve_plans(tmp_path, {}, allow_default=False)  # Stripe needs a file
    path = tmp_path / "mine.json"
    path.write_text(plans_json(price_cents=1500))
    [_, eod] = resolve_plans(tmp_path, {PLANS_ENV: str(path)})
    assert eod.price_cents == 1500 and eod.tier.end_of_day


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"bad\.json: not JSON \(line 1"),
        ('{"plans": []}', r"bad\.json: expected \{\"plans\": \[ \.\.\. \]\} with at least one"),
        (
            plans_json(price_cents=-1),
            r"plans\[1\] \(eod\) field price_cents: Input should be greater",
        ),
        (plans_json(tier={"name": "eod", "delay_minutes": "5"}), r"field tier\.delay_minutes"),
        (plans_json(colour="red"), r"field colour: Extra inputs are not permitted"),
        (plans_json(plan_id="Not OK"), r"field plan_id: String should match pattern"),
        (plans_json(plan_id="realtime"), r"plans\[1\]: plan_id 'realtime' is repeated"),
        (plans_json(stripe_price_id="prod_1"), r"field stripe_price_id"),
    ],
)
def test_bad_plans_file_names_file_plan_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_plans(text, "/etc/signals/bad.json")
    assert str(err.value).startswith("plans file /etc/signals/bad.json: ")
    assert "\n" not in str(err.value)


def test_sync_plans_deactivates_removed_plans(tmp_path: Path) -> None:
    from signals.entitlements import load_plans

    svc, _, _, _ = local_service(tmp_path)
    svc.sync_plans(default_plans()[:1])
    with svc.engine.connect() as conn:
        assert [p.plan_id for p in load_plans(conn)] == ["realtime"]
        assert {p.plan_id for p in load_plans(conn, active_only=False)} == {"realtime", "eod"}


def test_stripe_config_from_env_and_files(tmp_path: Path) -> None:
    key = "sk_test_secretvalue_4242"
    (tmp_path / "key").write_text(key + "\n")
    (tmp_path / "whsec").write_text("whsec_abc\n")
    env = {
        "STRIPE_API_KEY_FILE": str(tmp_path / "key"),
        "STRIPE_WEBHOOK_SECRET_FILE": str(tmp_path / "whsec"),
    }
    engine = make_engine(tmp_path, {})
    provider = make_provider(engine, env)
    assert isinstance(provider, StripeProvider) and key not in repr(provider)
    with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET is not set") as e1:
        StripeProvider.from_env({"STRIPE_API_KEY": key})
    with pytest.raises(ConfigError, match="does not look like a Stripe secret key") as e2:
        StripeProvider.from_env(
            {"STRIPE_API_KEY": "pk_test_public_key_oops", "STRIPE_WEBHOOK_SECRET": "w"}
        )
    with pytest.raises(ConfigError, match="STRIPE_API_URL='ftp://x' is not an http"):
        StripeProvider.from_env({"STRIPE_API_KEY": key, "STRIPE_API_URL": "ftp://x"})
    with pytest.raises(ConfigError, match="STRIPE_API_KEY_FILE=/nope cannot be read") as e3:
        StripeProvider.from_env({"STRIPE_API_KEY_FILE": "/nope"})
    for err in (e1, e2, e3):
        assert key not in str(err.value) and "pk_test_public" not in str(err.value)


def test_stripe_plan_without_price_and_bad_key_are_clear(tmp_path: Path) -> None:
    with StripeFake() as fake:
        engine = make_engine(tmp_path, {})
        env = {
            "STRIPE_API_KEY": fake.api_key,
            "STRIPE_WEBHOOK_SECRET": "whsec_x",
            "STRIPE_API_URL": fake.url,
        }
        svc = SubscriptionService(engine, StripeProvider.from_env(env), default_plans())
        sid = svc.register(Channel.TELEGRAM, "1")
        with pytest.raises(ConfigError, match="no active Stripe price has lookup_key 'realtime'"):
            svc.checkout(sid, "realtime")
        wrong = "sk_test_wrong_key_0000000000"
        bad = StripeProvider(wrong, "whsec_x", api_url=fake.url)
        with pytest.raises(
            SignalsError, match="Stripe price lookup failed: Invalid API Key"
        ) as err:
            bad.price_id(default_plans()[0])
        assert wrong not in str(err.value)


def test_local_checkout_page_completes_through_the_handler(tmp_path: Path) -> None:
    access = RecordingAccess()
    svc = build_service(tmp_path, {}, [access])
    assert isinstance(svc.provider, LocalProvider) and svc.plans() == default_plans()
    sid = svc.register(Channel.TELEGRAM, "7101")
    link = svc.checkout(sid, "eod")
    server = UvicornThread(Starlette(routes=checkout_routes(svc)), name="checkout").start()
    try:
        url = link.url.replace("http://127.0.0.1:8080", server.url)
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200 and b"Subscribe to eod" in resp.read()
        assert svc.status(sid) == []  # looking is not buying
        with urllib.request.urlopen(
            urllib.request.Request(url, b"", method="POST"), timeout=10
        ) as resp:
            assert b"Subscribed to eod" in resp.read()
        [view] = svc.status(sid)
        assert view.entitled and view.status == "active"
        assert access.actions("grant") == [("grant", "eod", "7101")]
        with urllib.request.urlopen(f"{server.url}/checkout/done", timeout=10) as resp:
            assert b"Thank you" in resp.read()
        for target, code in ((url, 409), (f"{server.url}/local/checkout/lcs_nope", 404)):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(
                    urllib.request.Request(target, b"", method="POST"), timeout=10
                )
            assert err.value.code == code
    finally:
        server.stop()


def test_build_service_with_stripe_needs_a_plans_file(tmp_path: Path) -> None:
    env = {"STRIPE_API_KEY": "sk_test_x_123456", "STRIPE_WEBHOOK_SECRET": "whsec_x"}
    with pytest.raises(ConfigError, match=r"plans file .*plans\.json cannot be read"):
        build_service(tmp_path, env)
    (tmp_path / "signals" / "plans.json").write_text(plans_json())
    paths = [r.path for r in checkout_routes(build_service(tmp_path, env))]  # type: ignore[attr-defined]
    assert paths == ["/checkout/done"]  # no local confirm page when Stripe takes the money
