"""The access reconciler: converges, is idempotent, repairs drift, survives a failing platform,
and drives the real TelegramAccess (python-telegram-bot against the local Bot API server)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from telegram import Bot

from signals.access import AccessReconciler, ReconcileReport
from signals.db import make_engine
from signals.discord.access import DiscordAccess
from signals.discord.config import DiscordConfig
from signals.discord.rest import DiscordRest
from signals.local.discord_server import DiscordApiServer
from signals.local.telegram_server import TelegramBotApiServer
from signals.model import Channel
from signals.payments.local import LocalProvider
from signals.subscriptions import SubscriptionService, default_plans
from signals.telegram.access import TelegramAccess
from tests.signals.pay_fixtures import Clock, RecordingAccess

TOKEN = "7100001:AAaccess-test_0123456789abcdef"
RT_CHAT = -1001000000001


def service(home: Path, *platforms: object) -> tuple[SubscriptionService, LocalProvider, Clock]:
    clock = Clock()
    engine = make_engine(home, {})
    provider = LocalProvider(engine, clock=clock)
    reconciler = AccessReconciler(engine, list(platforms), clock=clock)  # type: ignore[arg-type]
    return (
        SubscriptionService(engine, provider, default_plans(), reconciler, clock),
        provider,
        clock,
    )


async def buy(svc: SubscriptionService, local: LocalProvider, sid: str, plan: str) -> str:
    link = svc.checkout(sid, plan)
    events = local.complete(link.session_id)
    await svc.apply_local(events)
    assert events[1].object_ref is not None
    return events[1].object_ref


def run(svc: SubscriptionService) -> ReconcileReport:
    assert svc.reconciler is not None
    return asyncio.run(svc.reconciler.reconcile_all())


def test_reconciler_is_idempotent_and_repairs_drift(tmp_path: Path) -> None:
    tg, dc = RecordingAccess(), RecordingAccess(Channel.DISCORD, links=False)
    svc, local, _ = service(tmp_path, tg, dc)
    sid = svc.register(Channel.TELEGRAM, "7001")
    with svc.engine.begin() as conn:  # the same person linked their Discord account
        from signals.db import subscribers

        conn.execute(subscribers.update().values(discord_user_id="990000000000000001"))
    asyncio.run(buy(svc, local, sid, "realtime"))
    assert tg.actions("grant") == [("grant", "realtime", "7001")]
    assert dc.actions("grant") == [("grant", "realtime", "990000000000000001")]
    assert run(svc).changes == []  # converged: a second pass changes nothing
    assert len(tg.calls) == len(dc.calls) == 1
    # drift: the role is removed by hand, the member leaves, a stranger is let in by hand
    dc.members.clear()
    tg.join("realtime", "7001")
    assert [c.action for c in run(svc).changes] == ["joined", "grant"]
    tg.members.discard(("realtime", "7001"))
    assert [(c.action, c.platform) for c in run(svc).changes] == [("grant", "telegram")]
    assert run(svc).changes == []  # the new link is still valid: no second link
    other = svc.register(Channel.TELEGRAM, "7002")
    tg.join("eod", "7002")  # never paid
    report = asyncio.run(svc.reconciler.reconcile_subscriber(other))  # type: ignore[union-attr]
    assert [(c.action, c.plan_id) for c in report.changes] == [("revoke", "eod")]
    assert ("eod", "7002") not in tg.members


def test_failing_platform_does_not_stop_the_others(tmp_path: Path) -> None:
    tg, dc = RecordingAccess(fail=True), RecordingAccess(Channel.DISCORD, links=False)
    svc, local, _ = service(tmp_path, tg, dc)
    sid = svc.register(Channel.DISCORD, "990000000000000002")
    with svc.engine.begin() as conn:
        from signals.db import subscribers

        conn.execute(subscribers.update().values(telegram_user_id=7003))
    asyncio.run(buy(svc, local, sid, "eod"))
    assert dc.actions("grant") == [("grant", "eod", "990000000000000002")]
    report = run(svc)
    # only the entitled plan needs Telegram (the periodic pass asks nothing about the other)
    assert report.changes == []
    assert report.errors == [f"{sid}/eod/telegram: ConnectionError: platform down"]
    tg.fail = False  # the platform is back: the safety net converges it
    assert [(c.action, c.platform) for c in run(svc).changes] == [("grant", "telegram")]


def test_plan_withdrawn_revokes_and_periodic_loop_runs(tmp_path: Path) -> None:
    tg = RecordingAccess()
    svc, local, _ = service(tmp_path, tg)
    sid = svc.register(Channel.TELEGRAM, "7004")
    asyncio.run(buy(svc, local, sid, "eod"))
    other = svc.register(Channel.TELEGRAM, "7007")
    ref = asyncio.run(buy(svc, local, other, "realtime"))
    local.cancel(ref)  # its events never reach the handler: only the refresh can see it
    svc.sync_plans(default_plans()[:1])  # the operator drops the eod plan from the file
    reports: list[ReconcileReport] = []

    async def loop() -> None:
        stop = asyncio.Event()

        def seen(report: ReconcileReport) -> None:
            reports.append(report)
            if len(reports) == 2:
                stop.set()

        assert svc.reconciler is not None
        await asyncio.wait_for(
            svc.reconciler.run_periodic(0.05, stop, seen, refresh=svc.refresh_subscriptions),
            timeout=10,
        )

    asyncio.run(loop())
    first = [(c.action, c.subscriber_id, c.plan_id) for c in reports[0].changes]
    assert first == [("revoke", sid, "eod"), ("revoke", other, "realtime")]
    assert reports[1].changes == []


def test_real_telegram_access_lifecycle(tmp_path: Path) -> None:
    """Purchase -> single-use link DM'd -> joined -> payment fails -> grace ends -> removed
    (ban + unban: may rejoin later) -> re-subscribe -> a new link works."""
    with TelegramBotApiServer(TOKEN, enforce_limits=False) as server:
        server.add_chat(RT_CHAT, "supergroup", "Signals realtime")
        server.add_user(7005, "Sam", "sam", started=True)
        server.add_user(7006, "Eve", "eve")

        async def main() -> None:
            async with Bot(TOKEN, base_url=server.base_url) as bot:
                clock = Clock()
                access = TelegramAccess(bot, now=clock)
                svc, local, _ = service(tmp_path, access)
                svc.reconciler.clock = svc.clock = local.clock = clock  # type: ignore[union-attr]
                sid = svc.register(Channel.TELEGRAM, "7005", chat_id="7005")
                ref = await buy(svc, local, sid, "realtime")
                dms = server.messages(7005)
                assert len(dms) == 1 and "single-use invite link" in (dms[0].text or "")
                link = (dms[0].text or "").rsplit("\n", 1)[-1]
                assert server.user_joins(7005, link) == "joined"
                assert server.user_joins(7006, link) == "limit_reached"  # single-use: forwarded
                report = await svc.reconciler.reconcile_all()  # type: ignore[union-attr]
                assert [c.action for c in report.changes] == ["joined"]
                await svc.apply_local(local.fail_payment(ref))
                assert server.member_status(RT_CHAT, 7005) == "member"  # grace period
                clock.advance(days=3, seconds=1)
                report = await svc.reconciler.reconcile_all()  # type: ignore[union-attr]
                assert [c.action for c in report.changes] == ["revoke"]
                assert server.member_status(RT_CHAT, 7005) == "left"  # banned, then unbanned
                await svc.apply_local(local.cancel(ref))
                await buy(svc, local, sid, "realtime")
                new_link = (server.messages(7005)[-1].text or "").rsplit("\n", 1)[-1]
                assert new_link != link
                assert server.user_joins(7005, new_link) == "joined"
                assert server.member_status(RT_CHAT, 7005) == "member"

        asyncio.run(main())


def test_real_discord_access_roles(tmp_path: Path) -> None:
    """The plan's role is put on the member at purchase, removed after the grace period, put
    back when a hand-removed role is found by the safety net, and kept off after a cancel."""
    token = "MTA0NjA5MDAwMDAwMDAwMDAx.GfAkE1.not-a-real-token-0123456789abcdef"  # token-shaped
    app_id, user = "1046090000000000001", "990000000000000005"
    with DiscordApiServer(token, app_id, limits_scale=10.0) as fake:
        guild = fake.add_guild()
        role = fake.add_role(guild, default_plans()[0].discord_role_id, "realtime")
        fake.add_member(guild, user)
        config = DiscordConfig("ab" * 32, app_id, token, api_url=fake.api_url, guild_id=guild)

        async def main() -> None:
            async with DiscordRest(config) as rest:
                svc, local, clock = service(tmp_path, DiscordAccess(rest, guild))
                reconciler = svc.reconciler
                assert reconciler is not None
                sid = svc.register(Channel.DISCORD, user)
                ref = await buy(svc, local, sid, "realtime")
                assert fake.member_roles(guild, user) == {role}
                await rest.request(  # a moderator removes the role by hand
                    "DELETE",
                    "/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
                    {"guild_id": guild, "user_id": user, "role_id": role},
                )
                report = await reconciler.reconcile_all()
                assert [(c.action, c.platform) for c in report.changes] == [("grant", "discord")]
                assert fake.member_roles(guild, user) == {role}
                await svc.apply_local(local.fail_payment(ref))
                clock.advance(days=3, seconds=1)
                assert [c.action for c in (await reconciler.reconcile_all()).changes] == ["revoke"]
                assert fake.member_roles(guild, user) == set()
                await svc.apply_local(local.cancel(ref))
                assert (await reconciler.reconcile_all()).changes == []
                assert fake.member_roles(guild, user) == set()

        asyncio.run(main())
