"""The Telegram bot end to end: the real python-telegram-bot Application long-polling (or taking
webhooks from) the local Bot API fake, subscriber and operator conversations, the webhook's
secret check, offsets, and the settings (errors, the token kept out of logs)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from signals.errors import ConfigError
from signals.interfaces import OutboundMessage, SubscriptionView
from signals.local.telegram_server import TelegramBotApiServer
from signals.model import Channel, TargetKind
from signals.telegram.bot import SECRET_HEADER, build_application, start_bot, stop_bot
from signals.telegram.config import TelegramConfig, load_config
from signals.telegram.sender import TelegramSender, marker
from tests.signals.tg_fixtures import (
    OPERATOR,
    SUBSCRIBER,
    TOKEN,
    MemorySubscriptions,
    RecordingConsole,
    buttons,
    config_for,
    fake_telegram,
    polling_bot,
    press,
    reply,
    text_of,
    wait_until,
    webhook_server,
)

SECRET = "hook-secret_0123456789"


@pytest.fixture
def tg() -> Iterator[TelegramBotApiServer]:
    with fake_telegram() as server:
        yield server


def test_start_plans_subscribe_gives_a_checkout_button(tg: TelegramBotApiServer) -> None:
    subs, console = MemorySubscriptions(), RecordingConsole()

    async def scenario() -> None:
        async with polling_bot(tg, subs, console):
            menu = await reply(tg, SUBSCRIBER, "/start")
            assert subs.registered == {("telegram", str(SUBSCRIBER)): f"sub-{SUBSCRIBER}"}
            assert subs.chats[f"sub-{SUBSCRIBER}"] == str(SUBSCRIBER)
            assert "/plans" in text_of(menu) and "/flatten" not in text_of(menu)  # not an operator
            assert [b["callback_data"] for b in buttons(menu)] == ["menu:plans", "menu:status"]

            plans = await reply(tg, SUBSCRIBER, "/plans")
            assert [b["callback_data"] for b in buttons(plans)] == ["sub:rt", "sub:eod"]
            assert "49.00 USD/month" in text_of(plans)

            before = len(tg.messages(SUBSCRIBER))
            await press(tg, SUBSCRIBER, plans, "sub:rt")
            pay = await wait_until(lambda: tg.messages(SUBSCRIBER)[before:])
            assert buttons(pay[-1]) == [
                {"text": "Pay for rt", "url": "https://pay.example.test/checkout/cs_1"}
            ]
            assert subs.checkouts == [(f"sub-{SUBSCRIBER}", "rt")]

            direct = await reply(tg, SUBSCRIBER, "/subscribe eod")
            assert buttons(direct)[0]["url"].endswith("cs_2")
            unknown = await reply(tg, SUBSCRIBER, "/subscribe nope")
            assert "No plan 'nope'" in text_of(unknown) and len(subs.checkouts) == 2

    asyncio.run(scenario())


def test_status_unsubscribe_and_the_signal_marker(tg: TelegramBotApiServer) -> None:
    grace = datetime(2026, 12, 9, 15, 0, tzinfo=UTC)
    subs, console = MemorySubscriptions(), RecordingConsole()
    subs.views[f"sub-{SUBSCRIBER}"] = [SubscriptionView("rt", "past_due", True, grace_until=grace)]

    async def scenario() -> None:
        async with polling_bot(tg, subs, console) as app:
            mine = await reply(tg, SUBSCRIBER, "/status")
            assert "rt: past_due, entitled, grace until 2026-12-09 15:00 UTC" in text_of(mine)
            assert "Runner" not in text_of(mine)
            ops = await reply(tg, OPERATOR, "/status")
            assert "No subscriptions yet" in text_of(ops)
            assert "Runner:\nrunner ACTIVE; status: nothing open" in text_of(ops)

            offer = await reply(tg, SUBSCRIBER, "/unsubscribe")
            assert buttons(offer) == [{"text": "Cancel rt", "callback_data": "unsub:rt"}]
            await press(tg, SUBSCRIBER, offer, "unsub:rt")
            edited = await wait_until(
                lambda: [
                    m
                    for m in tg.messages(SUBSCRIBER)
                    if m.message_id == offer.message_id and m.text == "rt cancelled at period end"
                ]
            )
            assert buttons(edited[0]) == [] and subs.cancelled == [(f"sub-{SUBSCRIBER}", "rt")]
            nothing = await reply(tg, OPERATOR, "/unsubscribe")
            assert text_of(nothing) == "You have no subscription to cancel."

            # a signal's marker button answers with its reference (the trace to the outbox)
            signal = OutboundMessage(
                "f" * 32, Channel.TELEGRAM, TargetKind.DM, str(SUBSCRIBER), "BUY 10 SPY"
            )
            sent = await TelegramSender(app.bot).send(signal)
            query = await press(
                tg, SUBSCRIBER, tg.messages(SUBSCRIBER)[-1], marker(signal.idem_key)
            )
            assert tg.messages(SUBSCRIBER)[-1].message_id == int(sent.message_id)
            answer = tg.callback_answer(query) or {}
            assert answer.get("text", "").startswith(f"Signal reference sig:{'f' * 16}")
        # the console was asked once, for the operator only
        assert [c[:3] for c in console.calls] == [("telegram", str(OPERATOR), "status")]

    asyncio.run(scenario())


def test_flatten_acts_only_on_the_confirm_press(tg: TelegramBotApiServer) -> None:
    subs, console = MemorySubscriptions(), RecordingConsole()

    async def scenario() -> None:
        async with polling_bot(tg, subs, console):
            first = await reply(tg, OPERATOR, "/flatten")
            confirm, cancel = (b["callback_data"] for b in buttons(first))
            assert confirm.startswith("confirm:") and cancel.startswith("cancel:")
            assert console.acted == []  # asking is not acting
            await press(tg, OPERATOR, first, cancel)
            await wait_until(lambda: "cancelled" in (tg.messages(OPERATOR)[-1].text or ""))
            assert console.acted == []

            second = await reply(tg, OPERATOR, "/flatten")
            confirm = buttons(second)[0]["callback_data"]
            await press(tg, OPERATOR, second, confirm)
            done = await wait_until(
                lambda: [m for m in tg.messages(OPERATOR) if m.text == "/flatten done"]
            )
            assert console.acted == ["flatten"]
            assert done[0].message_id == second.message_id and buttons(done[0]) == []
            # a second press of the spent button does nothing
            query = await press(tg, OPERATOR, second, confirm)
            assert (tg.callback_answer(query) or {}).get("text") == "Expired"
            assert console.acted == ["flatten"]

    asyncio.run(scenario())


def test_a_subscriber_is_refused_the_operator_commands(tg: TelegramBotApiServer) -> None:
    subs, console = MemorySubscriptions(), RecordingConsole()

    async def scenario() -> None:
        async with polling_bot(tg, subs, console):
            answer = await reply(tg, SUBSCRIBER, "/halt now")
            assert text_of(answer).startswith("refused") and buttons(answer) == []

    asyncio.run(scenario())
    assert console.calls == [("telegram", str(SUBSCRIBER), "halt", "now", False)]
    assert console.acted == []


def test_polling_processes_each_update_once(tg: TelegramBotApiServer) -> None:
    subs, console = MemorySubscriptions(), RecordingConsole()

    async def scenario() -> None:
        async with polling_bot(tg, subs, console):
            for text in ("/start", "/plans", "/status"):
                tg.user_sends(SUBSCRIBER, text)
            await wait_until(lambda: len(tg.messages(SUBSCRIBER)) == 3)
            await asyncio.sleep(1.5)  # another long poll: nothing is handed out twice
        assert len(tg.messages(SUBSCRIBER)) == 3
        assert tg.pending_updates() == []  # the last offset was confirmed on stop
        async with polling_bot(tg, subs, console):  # a restarted bot starts after them
            await asyncio.sleep(1.5)
            assert len(tg.messages(SUBSCRIBER)) == 3
            tg.user_sends(SUBSCRIBER, "/status")
            await wait_until(lambda: len(tg.messages(SUBSCRIBER)) == 4)

    asyncio.run(scenario())
    polls = tg.requests("getUpdates")
    assert any(r.params.get("offset") for r in polls)
    wanted = json.loads(polls[0].params["allowed_updates"])
    assert {"message", "callback_query", "chat_member"} <= set(wanted)
    menu = json.loads(tg.requests("setMyCommands")[0].params["commands"])
    assert [c["command"] for c in menu][:5] == [
        "start",
        "plans",
        "subscribe",
        "status",
        "unsubscribe",
    ]


def test_webhook_checks_the_secret_before_processing(tg: TelegramBotApiServer) -> None:
    subs, console = MemorySubscriptions(), RecordingConsole()
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": SUBSCRIBER, "type": "private", "first_name": "Sam"},
            "from": {"id": SUBSCRIBER, "is_bot": False, "first_name": "Sam"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }

    async def scenario() -> None:
        placeholder = config_for(tg, mode="webhook", webhook_secret=SECRET)
        app = build_application(placeholder, subs, console)
        async with webhook_server(app, SECRET) as url:
            config = config_for(tg, mode="webhook", webhook_url=url, webhook_secret=SECRET)
            await start_bot(app, config)
            try:
                async with httpx.AsyncClient() as client:
                    for headers in ({}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET + "x"}):
                        r = await client.post(url, content=json.dumps(update), headers=headers)
                        assert r.status_code == 403
                assert subs.registered == {} and tg.messages(SUBSCRIBER) == []

                tg.user_sends(SUBSCRIBER, "/start")  # the fake POSTs it with the secret
                await wait_until(lambda: tg.messages(SUBSCRIBER))
                assert subs.registered == {("telegram", str(SUBSCRIBER)): f"sub-{SUBSCRIBER}"}
                assert [d.status for d in tg.webhook_deliveries()] == [200]

                # Telegram holding a stale secret: refused (403) and retried, never processed
                await app.bot.set_webhook(url, secret_token="stale-secret")
                tg.user_sends(SUBSCRIBER, "/plans")
                await wait_until(lambda: any(d.status == 403 for d in tg.webhook_deliveries()))
                assert len(tg.messages(SUBSCRIBER)) == 1
                await app.bot.set_webhook(url, secret_token=SECRET)  # fixed: delivered once
                await wait_until(lambda: len(tg.messages(SUBSCRIBER)) == 2)
            finally:
                await stop_bot(app)

    asyncio.run(scenario())
    assert [r.params["secret_token"] for r in tg.requests("setWebhook")][0] == SECRET


def test_settings_errors_and_files(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {
        "TELEGRAM_BOT_TOKEN_FILE": str(token_file),
        "TELEGRAM_BOT_TOKEN": "1:ignored-when-the-file-is-set",
        "TELEGRAM_API_URL": "http://127.0.0.1:8081/bot/",
        "TELEGRAM_OPERATOR_IDS": "9001, 9002",
    }
    config = load_config(env)
    assert config.token == TOKEN and config.api_url == "http://127.0.0.1:8081/bot"
    assert config.operator_ids == {9001, 9002} and config.mode == "polling"
    assert TOKEN not in repr(config)
    bad = {
        "TELEGRAM_BOT_TOKEN": "TELEGRAM_BOT_TOKEN is not a bot token",
        "TELEGRAM_MODE": "TELEGRAM_MODE='pull' is not a mode",
        "TELEGRAM_API_URL": "must end in /bot",
        "TELEGRAM_OPERATOR_IDS": "TELEGRAM_OPERATOR_IDS has '@olga'",
        "TELEGRAM_WEBHOOK_SECRET": "TELEGRAM_WEBHOOK_SECRET must be 1-256 characters",
    }
    values = {
        "TELEGRAM_BOT_TOKEN": "not-a-token",
        "TELEGRAM_MODE": "pull",
        "TELEGRAM_API_URL": "http://127.0.0.1:8081",
        "TELEGRAM_OPERATOR_IDS": "9001,@olga",
        "TELEGRAM_WEBHOOK_SECRET": "has spaces",
    }
    for var, expected in bad.items():
        with pytest.raises(ConfigError, match=expected) as err:
            load_config({"TELEGRAM_BOT_TOKEN": TOKEN, var: values[var]})
        assert TOKEN not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="needs TELEGRAM_WEBHOOK_URL"):
        load_config({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_MODE": "webhook"})
    with pytest.raises(ConfigError, match="needs TELEGRAM_WEBHOOK_SECRET"):
        load_config(
            {
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_MODE": "webhook",
                "TELEGRAM_WEBHOOK_URL": "https://bots.example.com/telegram/webhook",
            }
        )
    with pytest.raises(ConfigError, match="set TELEGRAM_BOT_TOKEN"):
        load_config({})
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config({"TELEGRAM_BOT_TOKEN_FILE": str(tmp_path / "missing")})


def test_the_token_never_reaches_a_log(
    tg: TelegramBotApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx logs every request URL at INFO and PTB the base URL at DEBUG: both carry the
    token, and both reach pytest's handler scrubbed; a refused token fails in one line."""
    caplog.set_level(logging.DEBUG)
    subs, console = MemorySubscriptions(), RecordingConsole()

    async def scenario() -> None:
        async with polling_bot(tg, subs, console):
            await reply(tg, SUBSCRIBER, "/start")
        wrong = TelegramConfig(token="7000001:wrong-token_0123456789", api_url=tg.base_url)
        app = build_application(wrong, subs, console)
        with pytest.raises(ConfigError, match="refused TELEGRAM_BOT_TOKEN") as err:
            await start_bot(app, wrong)
        assert "wrong-token" not in str(err.value)
        await app.shutdown()

    asyncio.run(scenario())
    # the fake's own uvicorn access lines stand for Telegram's side of the wire: left out
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "uvicorn.access")
    assert "HTTP Request: POST http://127.0.0.1" in ours  # httpx did log the calls
    assert "/bot***/getUpdates" in ours and "Set Bot API URL" in ours
    assert TOKEN not in ours and TOKEN.split(":")[1] not in ours
    assert "wrong-token_0123456789" not in ours
