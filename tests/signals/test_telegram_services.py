"""The Telegram bot in front of the real services on a temporary SQLite data root:
``signals.subscriptions.SubscriptionService`` with the embedded local payment provider and the
``AccessReconciler`` driving :class:`signals.telegram.access.TelegramAccess`, and
``signals.console.OperatorConsole`` (the real halt through ``live.runner.control``, the real
audit chain). The subscriber's whole life runs through the local Bot API fake: subscribe, pay,
get a single-use link by DM, join, fail a payment, keep access through the grace period, lose it
after, re-subscribe and rejoin."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from telegram import Bot

from contracts import paths
from live.journal.store import Journal
from live.runner import control
from signals.access import AccessReconciler
from signals.console import OperatorConsole
from signals.db import access, audit_log, make_engine, subscribers, subscriptions
from signals.payments.local import LocalProvider
from signals.subscriptions import SubscriptionService, default_plans
from signals.telegram.access import TelegramAccess
from tests.signals.tg_fixtures import (
    OPERATOR,
    SUBSCRIBER,
    TOKEN,
    buttons,
    fake_telegram,
    polling_bot,
    press,
    reply,
    text_of,
    wait_until,
)

PAID_CHAT = -1001000000001  # default_plans()'s realtime chat


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(autouse=True)
def _embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ALPACA_IMPROVED_DATABASE_URL", "ALPACA_IMPROVED_LAKE_URI"):
        monkeypatch.delenv(var, raising=False)


def _session(url: str) -> str:
    """The local provider's checkout session id from its confirm URL."""
    found = re.search(r"(lcs_[A-Za-z0-9_-]+)", url)
    assert found, url
    return found.group(1)


def test_subscriber_lifecycle_and_operator_halt_with_the_real_services(tmp_path: Path) -> None:
    Journal(paths.journal_path(tmp_path)).close()  # a data root a live runner has used
    engine = make_engine(tmp_path, {})
    clock = Clock()
    console = OperatorConsole(tmp_path, engine, environ={"TELEGRAM_OPERATOR_IDS": str(OPERATOR)})
    provider = LocalProvider(engine, clock=clock)

    with fake_telegram() as tg:
        tg.add_chat(PAID_CHAT, "channel", "Signals realtime")

        async def scenario() -> None:
            subs = SubscriptionService(engine, provider, default_plans(), clock=clock)
            async with polling_bot(tg, subs, console) as app:
                access = TelegramAccess(app.bot, engine, now=clock)
                reconciler = AccessReconciler(engine, [access], clock)
                subs.reconciler = reconciler
                await reply(tg, SUBSCRIBER, "/start")
                with engine.connect() as conn:
                    row = conn.execute(sa.select(subscribers)).one()
                assert (row.telegram_user_id, row.telegram_chat_id) == (SUBSCRIBER, SUBSCRIBER)

                plans = await reply(tg, SUBSCRIBER, "/plans")
                assert [b["callback_data"] for b in buttons(plans)] == ["sub:realtime", "sub:eod"]
                before = len(tg.messages(SUBSCRIBER))
                await press(tg, SUBSCRIBER, plans, "sub:realtime")
                pay = (await wait_until(lambda: tg.messages(SUBSCRIBER)[before:]))[-1]
                url = buttons(pay)[0]["url"]

                # paid: the reconciler DMs a single-use link, the subscriber joins
                outcomes = await subs.apply_local(provider.complete(_session(url)))
                link = next(c.invite_link for o in outcomes for c in o.changes if c.invite_link)
                assert link is not None and link in text_of(tg.messages(SUBSCRIBER)[-1])
                assert tg.user_joins(SUBSCRIBER, link) == "joined"
                status = await reply(tg, SUBSCRIBER, "/status")
                assert "realtime: active, entitled" in text_of(status)
                again = await reply(tg, SUBSCRIBER, "/subscribe realtime")
                assert "already have the realtime plan" in text_of(again)

                # a failed payment: past_due, still in the chat during the grace period
                ref = _ref(engine)
                await subs.apply_local(provider.fail_payment(ref))
                assert tg.member_status(PAID_CHAT, SUBSCRIBER) == "member"
                graced = await reply(tg, SUBSCRIBER, "/status")
                assert "realtime: past_due, entitled, period ends" in text_of(graced)
                assert "grace until" in text_of(graced)

                clock.now += dt.timedelta(days=4)  # the plan's 3 grace days are over
                report = await reconciler.reconcile_all()
                assert [c.action for c in report.changes] == ["revoke"] and not report.errors
                assert tg.member_status(PAID_CHAT, SUBSCRIBER) == "left"  # removed, not banned

                # re-subscribe: a new link works (the removal left no ban behind)
                await subs.apply_local(provider.cancel(ref))
                fresh = await reply(tg, SUBSCRIBER, "/subscribe realtime")
                outcomes = await subs.apply_local(
                    provider.complete(_session(buttons(fresh)[0]["url"]))
                )
                link2 = next(c.invite_link for o in outcomes for c in o.changes if c.invite_link)
                assert link2 is not None and link2 != link
                assert tg.user_joins(SUBSCRIBER, link2) == "joined"

                # the operator console behind the bot: refused, asked, confirmed
                refused = await reply(tg, SUBSCRIBER, "/halt")
                assert text_of(refused).startswith("refused") and buttons(refused) == []
                asked = await reply(tg, OPERATOR, "/halt")
                assert not control.halt_path(tmp_path).exists()
                await press(tg, OPERATOR, asked, buttons(asked)[0]["callback_data"])
                await wait_until(lambda: control.halt_path(tmp_path).is_file())
                await wait_until(lambda: "/halt done" in text_of(tg.messages(OPERATOR)[-1]))
                ops = await reply(tg, OPERATOR, "/status")
                assert "Runner:" in text_of(ops)

        asyncio.run(scenario())
        assert len(tg.requests("createChatInviteLink")) == 2  # one link per purchase, no spam

    with engine.connect() as conn:
        trail = [
            tuple(r)
            for r in conn.execute(
                sa.select(audit_log.c.user_id, audit_log.c.command, audit_log.c.allowed)
            )
        ]
    assert trail == [
        (str(SUBSCRIBER), "/halt", False),
        (str(OPERATOR), "/halt", True),
        (str(OPERATOR), "/halt", True),
        (str(OPERATOR), "/status", True),
    ]


def _ref(engine: sa.engine.Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.select(subscriptions.c.provider_ref)).scalar_one())


def test_a_restarted_service_revokes_the_unused_link_the_reconciler_stored(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, {})
    clock = Clock()
    plan = default_plans()[0]
    with fake_telegram() as tg:
        tg.add_chat(PAID_CHAT, "channel", "Signals realtime")
        tg.user_sends(SUBSCRIBER, "/start")

        async def scenario() -> None:
            async with Bot(TOKEN, base_url=tg.base_url) as bot:
                grant = await TelegramAccess(bot, engine, now=clock).grant(
                    plan, "telegram-4242", str(SUBSCRIBER)
                )
                with engine.begin() as conn:  # what the reconciler records for a grant
                    conn.execute(
                        sa.insert(access).values(
                            subscriber_id="telegram-4242",
                            plan_id=plan.plan_id,
                            platform="telegram",
                            state="invited",
                            invite_link=grant.invite_link,
                            invite_expires_at=grant.expires_at,
                            updated_at=clock(),
                        )
                    )
                restarted = TelegramAccess(bot, engine, now=clock)  # knows no link in memory
                await restarted.revoke(plan, "telegram-4242", str(SUBSCRIBER))
                assert tg.user_joins(SUBSCRIBER, grant.invite_link or "") == "revoked"

        asyncio.run(scenario())
