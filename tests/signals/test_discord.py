# ruff: noqa: F811  (the fixtures imported below are redefined as test parameters, as pytest wants)
"""Discord end to end over real HTTP: the bot's interactions endpoint under uvicorn, signed with a
real Ed25519 key by the fake's InteractionSender, and the REST side (sender, roles, commands)
against the stateful local Discord API with its rate limits enforced (windows 10x shorter).

Console and Subscriptions are the small recording implementations in ``discord_fixtures``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from signals.discord.access import DiscordAccess
from signals.discord.commands import COMMANDS, register_commands
from signals.discord.config import DiscordConfig, load_config
from signals.discord.rest import DiscordHTTPError, DiscordRest, RateLimited
from signals.discord.sender import DiscordSender
from signals.errors import ConfigError
from signals.interfaces import DeliveryError, OutboundMessage
from signals.local.discord_interactions import InteractionSender
from signals.local.discord_server import DiscordApiServer
from signals.local.discord_state import Interaction
from signals.model import Channel, TargetKind
from tests.signals.discord_fixtures import (  # noqa: F401  (fixtures)
    APP_ID,
    MEMBER,
    OPERATOR,
    PLANS,
    TOKEN,
    Bot,
    bot,
    config_for,
    fake,
)

T = TypeVar("T")
POST_MESSAGE = "POST /channels/{channel_id}/messages"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def rest_config(fake: DiscordApiServer, **extra: str) -> DiscordConfig:
    return config_for(fake, "ab" * 32, **extra)


def outbound(target: str, key: str = "k" * 32, kind: TargetKind = TargetKind.CHANNEL, **kw: Any):
    return OutboundMessage(key, Channel.DISCORD, kind, target, kw.pop("text", "BUY 10 SPY"), **kw)


# -- the interactions endpoint --------------------------------------------------------------
def test_ping_pong_and_every_bad_signature_is_401(bot: Bot) -> None:
    it = bot.sender.ping()
    assert (it.status, it.response) == (200, {"type": 1})
    assert [bot.sender.bad_signature(how) for how in ("flipped", "other_key", "missing")] == [
        401,
        401,
        401,
    ]
    stale = bot.sender.deliver({"type": 1}, timestamp=int(time.time()) - 301)  # > 5 min old
    assert stale.status == 401
    assert bot.sender.failures == [] and bot.endpoint.rejected == 4


def test_bad_signature_on_a_command_does_nothing(bot: Bot) -> None:
    intruder = InteractionSender(bot.fake, bot.sender.endpoint_url)  # signs with another key
    try:
        it = intruder.command("halt", OPERATOR, guild_id=None)
    finally:
        intruder.close()
    assert it.status == 401 and it.response == {"error": "invalid request signature"}
    assert bot.console.calls == []  # rejected before parsing: nothing reached the console


def test_subscriber_commands_answer_ephemerally(bot: Bot) -> None:
    plans = bot.sender.command("plans", MEMBER)
    assert plans.response is not None and plans.response["type"] == 4
    data = plans.response["data"]
    assert data["flags"] == 64 and "`rt`" in data["content"] and "end of day" in data["content"]

    sub = bot.sender.command("subscribe", MEMBER, {"plan": "rt"})
    assert sub.response is not None
    button = sub.response["data"]["components"][0]["components"][0]
    assert button["style"] == 5 and button["url"].endswith(f"/sub-discord-{MEMBER}/rt")

    status = bot.sender.command("status", MEMBER)  # a member's /status: their subscriptions
    assert status.response is not None and "`rt`: active" in status.response["data"]["content"]
    bot.sender.command("unsubscribe", MEMBER, {"plan": "rt"})
    assert bot.subs.cancelled == [(f"sub-discord-{MEMBER}", "rt")]

    bad = bot.sender.command("subscribe", MEMBER, {"plan": "nope"})
    assert bad.response is not None and "unknown plan 'nope'" in bad.response["data"]["content"]
    assert bot.console.calls == [] and bot.sender.failures == []


def test_flatten_acts_only_on_the_confirm_press_by_the_same_operator(bot: Bot) -> None:
    asked = bot.sender.command("flatten", OPERATOR, guild_id=None)
    assert asked.response is not None and asked.response["type"] == 4
    buttons = asked.response["data"]["components"][0]["components"]
    confirm = buttons[0]["custom_id"]
    assert confirm.startswith("confirm:flatten:") and buttons[0]["style"] == 4
    assert bot.console.acted == []  # asked, not done

    other = bot.sender.component(confirm, MEMBER, asked.original)  # someone else presses it
    assert other.response is not None and "refused" in other.response["data"]["content"]
    assert bot.console.acted == []

    pressed = bot.sender.component(confirm, OPERATOR, asked.original)
    assert pressed.response is not None and pressed.response["type"] == 7  # update the message
    assert pressed.response["data"]["content"] == "/flatten done"
    assert pressed.response["data"]["components"] == []  # the button is gone
    assert bot.console.acted == ["flatten"]
    again = bot.sender.component(confirm, OPERATOR, asked.original)  # the token works once
    assert again.response is not None and "refused" in again.response["data"]["content"]
    assert bot.console.acted == ["flatten"] and bot.sender.failures == []


def test_non_operator_is_refused_and_gets_no_button(bot: Bot) -> None:
    it = bot.sender.command("halt", MEMBER)
    assert it.response is not None
    data = it.response["data"]
    assert data["content"].startswith("refused") and data["components"] == []
    assert bot.console.calls == [("discord", MEMBER, "halt", "", False)]
    assert bot.console.acted == []


def test_slow_command_is_deferred_then_patched_within_the_budget(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    it = bot.sender.command("positions", OPERATOR)  # the console takes 2 s
    assert it.response == {"type": 5, "data": {"flags": 64}}
    assert it.elapsed_s is not None and it.elapsed_s < 1.8  # deferred after 1 s, not after 2 s
    assert bot.fake.wait_for(lambda: bool(it.edits), timeout_s=3.0)
    assert it.original is not None
    assert it.original["content"] == "runner ACTIVE; positions: nothing open"
    assert it.edits[0] - it.issued_at < 3.0
    patch = [c for c in bot.fake.requests if c.route.startswith("PATCH /webhooks/")]
    assert [c.status for c in patch] == [200] and not bot.sender.failures
    assert bot.fake.wait_for(lambda: "/webhooks/" in caplog.text)  # httpx logged the PATCH...
    assert it.token not in caplog.text  # ...with the interaction token masked


def test_an_answer_after_the_budget_is_recorded_as_a_failure(bot: Bot) -> None:
    bot.sender.budget_s = 0.5  # Discord's 3 s, shortened to keep the test fast
    bot.console.slow_s = 1.0
    bot.endpoint.defer_after_s = 2.0  # misconfigured: waits for the work instead of deferring
    it = bot.sender.command("positions", OPERATOR)
    assert it.late and bot.sender.failures == [f"interaction {it.id}: no answer within 0.5 s"]
    assert bot.fake.wait_for(lambda: it.status == 0)
    time.sleep(0.7)  # the endpoint's late answer arrives at no one; the token is dead
    assert it.original is None and it.edits == []


def test_status_goes_to_the_console_for_an_operator(bot: Bot) -> None:
    it = bot.sender.command("status", OPERATOR)
    assert it.response is not None and "status: nothing open" in it.response["data"]["content"]
    assert bot.console.calls == [("discord", OPERATOR, "status", "", False)]


def test_interaction_tokens_expire(fake: DiscordApiServer) -> None:
    it = Interaction("1", "tok-" + "x" * 60, fake.add_channel(), None, time.time(), {})
    fake.register_interaction(it)

    async def go() -> DiscordHTTPError:
        async with DiscordRest(rest_config(fake)) as rest:
            await rest.edit_original(it.token, {"content": "done"})
            await rest.followup(it.token, {"content": "and more"})
            fake.token_ttl_s = 0.0  # Discord's 15 minutes are over
            with pytest.raises(DiscordHTTPError) as info:
                await rest.edit_original(it.token, {"content": "too late"})
            return info.value

    err = run(go())
    assert (err.status, err.code) == (401, 50027)
    assert it.original is not None and it.original["content"] == "done"
    assert [m["content"] for m in it.followups] == ["and more"]


# -- the sender -----------------------------------------------------------------------------
def test_resend_with_the_same_nonce_returns_the_same_message(fake: DiscordApiServer) -> None:
    channel = fake.add_channel()
    msg = outbound(channel, image=PNG)

    async def go() -> tuple[str, str, Any]:
        async with DiscordRest(rest_config(fake)) as rest:
            sender = DiscordSender(rest)
            first = await sender.send(msg)
            second = await sender.send(msg)  # a resend after a crash
            found = await sender.probe(msg, None)
            other = await sender.probe(outbound(channel, "z" * 32, text="other"), None)
            assert other is None
            return first.message_id, second.message_id, found

    first, second, found = run(go())
    assert first == second and found is not None and found.message_id == first
    stored = fake.messages(channel)
    assert len(stored) == 1 and stored[0]["content"] == "BUY 10 SPY"
    assert fake.attachments[stored[0]["attachments"][0]["id"]] == PNG
    assert len(fake.calls(POST_MESSAGE)) == 2  # two POSTs, one message


def test_probe_finds_a_message_past_the_nonce_window_by_scanning() -> None:
    with DiscordApiServer(TOKEN, APP_ID, enforce_limits=False, nonce_window_s=0.2) as fake:
        channel = fake.add_channel()
        before = outbound(channel, "0" * 32, text="earlier signal")
        lost = outbound(channel, "1" * 32, text="SELL 5 QQQ")  # sent, then the dispatcher died

        async def go() -> tuple[str, str, Any, Any]:
            async with DiscordRest(rest_config(fake)) as rest:
                sender = DiscordSender(rest)
                anchor = (await sender.send(before)).message_id
                first = (await sender.send(lost)).message_id
                for i in range(120):  # the channel moves on: the scan has to page
                    await rest.create_message(channel, {"content": f"later {i}"})
                await asyncio.sleep(0.25)  # past the nonce window: a resend would duplicate
                found = await sender.probe(lost, anchor)
                missing = await sender.probe(outbound(channel, "2" * 32, text="never"), anchor)
                return anchor, first, found, missing

        anchor, first, found, missing = run(go())
        assert found is not None and found.message_id == first and missing is None
        listed = fake.calls("GET /channels/{channel_id}/messages")
        assert len(listed) == 1 + 2  # one page found it; the miss read both pages
        assert len(fake.messages(channel)) == 2 + 120  # the probes posted nothing
        resent = httpx.post(
            f"{fake.api_url}/channels/{channel}/messages",
            headers={"Authorization": f"Bot {TOKEN}"},
            json={"content": "SELL 5 QQQ", "nonce": "1" * 25, "enforce_nonce": True},
        ).json()
        assert resent["id"] != first  # why the probe scans instead of resending blindly


def test_dm_targets_open_the_dm_channel_once(fake: DiscordApiServer) -> None:
    async def go() -> None:
        async with DiscordRest(rest_config(fake)) as rest:
            sender = DiscordSender(rest)
            await sender.send(outbound(MEMBER, "a" * 32, TargetKind.DM))
            await sender.send(outbound(MEMBER, "b" * 32, TargetKind.DM, text="SELL"))

    run(go())
    dm = fake.dm_channel(MEMBER)
    assert dm is not None and [m["content"] for m in fake.messages(dm)] == ["BUY 10 SPY", "SELL"]
    assert len(fake.calls("POST /users/@me/channels")) == 1


def test_platform_errors_become_delivery_errors(fake: DiscordApiServer) -> None:
    channel = fake.add_channel()
    fake.queue_faults(POST_MESSAGE, ["429:2.5", "503"])

    async def attempt(msg: OutboundMessage) -> DeliveryError:
        async with DiscordRest(rest_config(fake)) as rest:
            with pytest.raises(DeliveryError) as info:
                await DiscordSender(rest).send(msg)
            return info.value

    limited = run(attempt(outbound(channel)))
    assert limited.retry_after == 2.5 and not (limited.blocked or limited.permanent)
    unavailable = run(attempt(outbound(channel)))
    assert unavailable.retry_after is None and not (unavailable.blocked or unavailable.permanent)
    assert run(attempt(outbound("123"))).blocked  # 404 Unknown Channel
    fake.deny_channel(channel)
    assert run(attempt(outbound(channel))).blocked  # 403 Missing Access
    fake.block_dms(MEMBER)
    assert run(attempt(outbound(MEMBER, kind=TargetKind.DM))).blocked  # 403 50007
    too_long = run(attempt(outbound(channel, text="x" * 2001)))
    assert too_long.permanent
    assert fake.messages(channel) == []  # nothing was posted by any of them
    assert fake.invalid_requests == 3  # the 429 and the two 403s


def test_a_global_429_pauses_every_route(fake: DiscordApiServer) -> None:
    channel, other = fake.add_channel(), fake.add_channel()
    fake.queue_faults(POST_MESSAGE, ["global429:1.0"])

    async def go() -> tuple[DeliveryError, RateLimited, float]:
        async with DiscordRest(rest_config(fake)) as rest:
            with pytest.raises(DeliveryError) as limited:
                await DiscordSender(rest).send(outbound(channel))
            with pytest.raises(RateLimited) as predicted:  # another route, nothing sent
                await rest.list_messages(other, wait=False)
            start = time.monotonic()
            await rest.list_messages(other)  # waits the global pause out
            return limited.value, predicted.value, time.monotonic() - start

    limited, predicted, waited = run(go())
    assert limited.retry_after == 1.0 and not predicted.sent and waited >= 0.5
    assert [c.status for c in fake.requests] == [429, 200]


def test_an_empty_bucket_is_reported_without_sending() -> None:
    with DiscordApiServer(TOKEN, APP_ID) as fake:  # Discord's own 5 per 5 s: robust under load
        channel = fake.add_channel()

        async def go() -> DeliveryError:
            async with DiscordRest(rest_config(fake)) as rest:
                sender = DiscordSender(rest)
                for i in range(5):
                    await sender.send(outbound(channel, f"{i}" * 32))
                with pytest.raises(DeliveryError) as info:
                    await sender.send(outbound(channel, "9" * 32))
                return info.value

        err = run(go())
        assert err.retry_after is not None and 0 < err.retry_after <= 5.0
        assert len(fake.calls(POST_MESSAGE)) == 5 and fake.invalid_requests == 0


def test_a_blind_burst_draws_discords_429s() -> None:
    with DiscordApiServer(TOKEN, APP_ID) as fake:  # Discord's own 5 per 5 s
        channel = fake.add_channel()
        auth = {"Authorization": f"Bot {TOKEN}"}
        with httpx.Client(base_url=fake.api_url, headers=auth) as raw:
            url = f"/channels/{channel}/messages"
            blind = [raw.post(url, json={"content": "x"}) for _ in range(7)]
        refused = [r for r in blind if r.status_code == 429]
        assert len(refused) == 2 and fake.invalid_requests == 2  # 5 per window
        body, headers = refused[0].json(), refused[0].headers
        assert set(body) == {"message", "retry_after", "global"} and body["global"] is False
        assert 0 < body["retry_after"] <= 5.0
        assert headers["via"] == "1.1 google" and headers["x-ratelimit-scope"] == "user"
        assert int(headers["retry-after"]) >= 1 and headers["x-ratelimit-remaining"] == "0"
        assert headers["x-ratelimit-limit"] == "5" and headers["x-ratelimit-bucket"]


def test_rest_client_paces_a_burst_by_the_headers(fake: DiscordApiServer) -> None:
    channel = fake.add_channel()

    async def burst() -> tuple[float, DiscordRest]:
        async with DiscordRest(rest_config(fake)) as rest:
            start = time.monotonic()
            await asyncio.gather(
                *(rest.create_message(channel, {"content": f"{i}"}) for i in range(12))
            )
            return time.monotonic() - start, rest

    elapsed, rest = run(burst())
    assert rest.rate_limited == 0 and fake.invalid_requests == 0  # not one 429
    assert len(fake.messages(channel)) == 12
    assert elapsed >= 0.9  # 12 messages at 5 per 0.5 s need three windows


def test_wrong_token_is_401_and_transient(fake: DiscordApiServer) -> None:
    channel = fake.add_channel()
    config = rest_config(fake, DISCORD_BOT_TOKEN="x" * 30)

    async def go() -> DeliveryError:
        async with DiscordRest(config) as rest:
            with pytest.raises(DeliveryError) as info:
                await DiscordSender(rest).send(outbound(channel))
            return info.value

    err = run(go())
    assert "DISCORD_BOT_TOKEN is wrong" in str(err) and not (err.permanent or err.blocked)
    assert [c.authorized for c in fake.requests] == [False] and fake.invalid_requests == 1


# -- roles and commands ---------------------------------------------------------------------
def test_roles_are_granted_and_removed_idempotently(fake: DiscordApiServer) -> None:
    guild = fake.add_guild()
    plan = PLANS[0]
    assert plan.discord_role_id is not None
    fake.add_role(guild, plan.discord_role_id)
    fake.add_member(guild, MEMBER)

    async def go() -> list[bool]:
        async with DiscordRest(rest_config(fake)) as rest:
            access = DiscordAccess(rest, guild)
            seen = [await access.is_member(plan, MEMBER)]
            await access.grant(plan, "sub-1", MEMBER)
            await access.grant(plan, "sub-1", MEMBER)
            seen.append(await access.is_member(plan, MEMBER))
            await access.revoke(plan, "sub-1", MEMBER)
            await access.revoke(plan, "sub-1", MEMBER)
            await access.revoke(plan, "sub-1", "999")  # left the server: nothing to remove
            seen.append(await access.is_member(plan, MEMBER))
            seen.append(await access.is_member(plan, "999"))
            return seen

    assert run(go()) == [False, True, False, False]
    roles = fake.calls("PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}")
    assert [c.status for c in roles] == [204, 204]
    assert roles[0].reason == "signals: subscriber sub-1 entitled to plan rt"
    assert [a["action"] for a in fake.audit_log] == ["MEMBER_ROLE_ADD"] * 2 + [
        "MEMBER_ROLE_REMOVE"
    ] * 2
    assert fake.member_roles(guild, MEMBER) == set()


def test_missing_manage_roles_is_a_403(fake: DiscordApiServer) -> None:
    guild = fake.add_guild()
    fake.add_role(guild, "700")
    fake.add_member(guild, MEMBER)
    fake.deny_manage_roles(guild)

    async def go() -> DiscordHTTPError:
        async with DiscordRest(rest_config(fake)) as rest:
            with pytest.raises(DiscordHTTPError) as info:
                await DiscordAccess(rest, guild).grant(PLANS[0], "sub-1", MEMBER)
            return info.value

    err = run(go())
    assert (err.status, err.code, err.discord_message) == (403, 50013, "Missing Permissions")
    assert fake.member_roles(guild, MEMBER) == set()


def test_commands_bulk_overwrite_is_idempotent(fake: DiscordApiServer) -> None:
    guild = fake.add_guild()

    async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with DiscordRest(rest_config(fake)) as rest:
            return await register_commands(rest, guild), await register_commands(rest, guild)

    first, second = run(go())
    assert [c["name"] for c in first] == [c["name"] for c in COMMANDS]
    assert [c["id"] for c in first] == [c["id"] for c in second]
    assert len(fake.commands[guild]) == len(COMMANDS) == 9


# -- config -----------------------------------------------------------------------------------
def test_config_errors_are_one_line_and_never_show_the_token(tmp_path: Path) -> None:
    good = {
        "DISCORD_APPLICATION_PUBLIC_KEY": "ab" * 32,
        "DISCORD_APPLICATION_ID": APP_ID,
        "DISCORD_BOT_TOKEN": TOKEN,
    }
    cfg = load_config(good)
    assert cfg.api_url == "https://discord.com/api/v10" and TOKEN not in repr(cfg)
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    from_file = load_config(
        {**good, "DISCORD_BOT_TOKEN": "", "DISCORD_BOT_TOKEN_FILE": str(secret)}
    )
    assert from_file.bot_token == TOKEN
    bad = [
        ({"DISCORD_APPLICATION_PUBLIC_KEY": "xyz"}, "DISCORD_APPLICATION_PUBLIC_KEY"),
        ({"DISCORD_APPLICATION_ID": "app"}, "DISCORD_APPLICATION_ID"),
        ({"DISCORD_BOT_TOKEN": ""}, "set DISCORD_BOT_TOKEN"),
        ({"DISCORD_BOT_TOKEN": f"Bot {TOKEN}"}, "starts with 'Bot '"),
        ({"DISCORD_BOT_TOKEN_FILE": str(tmp_path / "missing")}, "cannot be read"),
        ({"DISCORD_API_URL": "discord.com"}, "DISCORD_API_URL"),
        ({"DISCORD_GUILD_ID": "my-server"}, "DISCORD_GUILD_ID"),
        ({"DISCORD_OPERATOR_IDS": "4004, alice"}, "DISCORD_OPERATOR_IDS"),
    ]
    for change, needle in bad:
        with pytest.raises(ConfigError) as info:
            load_config({**good, **change})
        text = str(info.value)
        assert needle in text and "\n" not in text and TOKEN not in text, change
    ops = load_config({**good, "DISCORD_OPERATOR_IDS": "4004, 4005 4006"}).operator_ids
    assert ops == frozenset({"4004", "4005", "4006"})
