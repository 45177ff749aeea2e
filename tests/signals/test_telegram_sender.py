"""The Telegram sender and paid-chat access with the real python-telegram-bot ``Bot`` against the
local Bot API fake: delivery, the error classes, the in-flight probe that makes delivery exactly
once without idempotency keys, and invite links / removal."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from telegram import Bot

from signals.interfaces import Button, Delivered, DeliveryError, Lane, OutboundMessage
from signals.local.telegram_server import TelegramBotApiServer
from signals.model import Channel, Plan, TargetKind, Tier
from signals.telegram.access import TelegramAccess
from signals.telegram.sender import TelegramSender, marker
from tests.signals.tg_fixtures import OPERATOR, SUBSCRIBER, TOKEN, buttons, fake_telegram

PAID_CHAT = -1001000000001
PLAN = Plan("rt", "*", Tier("realtime"), 4900, telegram_chat_id=PAID_CHAT)


@pytest.fixture
def tg() -> Iterator[TelegramBotApiServer]:
    with fake_telegram() as server:
        yield server


def png(width: int = 4, height: int = 3) -> bytes:
    """A real (tiny, grey) PNG: the fake reads its size from the IHDR chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def message(key: str, target: int = SUBSCRIBER, **kw: object) -> OutboundMessage:
    kind = TargetKind.DM if target > 0 else TargetKind.CHANNEL
    return OutboundMessage(key * 32, Channel.TELEGRAM, kind, str(target), f"signal {key}", **kw)  # type: ignore[arg-type]


def with_bot(server: TelegramBotApiServer, body: Callable[[Bot], Awaitable[None]]) -> None:
    async def scenario() -> None:
        async with Bot(TOKEN, base_url=server.base_url) as bot:
            await body(bot)

    asyncio.run(scenario())


def test_text_and_photo_are_delivered_with_the_probe_marker(tg: TelegramBotApiServer) -> None:
    tg.user_sends(SUBSCRIBER, "hi")  # opens the private chat (message 1)
    chart = png()
    link = Button("Lineage", url="https://dash.example.test/e/1")

    async def body(bot: Bot) -> None:
        sender = TelegramSender(bot)
        text = await sender.send(message("a", buttons=(link,)))
        photo = await sender.send(message("b", image=chart))
        assert (text, photo) == (Delivered("2"), Delivered("3"))

    with_bot(tg, body)
    sent_text, sent_photo = tg.messages(SUBSCRIBER)
    assert sent_text.text == "signal a"
    assert buttons(sent_text) == [
        {"text": "ℹ️ Signal ref", "callback_data": marker("a" * 32)},
        {"text": "Lineage", "url": "https://dash.example.test/e/1"},
    ]
    assert marker("a" * 32) == "sig:" + "a" * 16
    assert sent_photo.caption == "signal b" and sent_photo.text is None
    assert sent_photo.photo_sha256 == hashlib.sha256(chart).hexdigest()
    assert buttons(sent_photo)[0]["callback_data"] == "sig:" + "b" * 16


def test_lanes() -> None:
    sender = TelegramSender(Bot(TOKEN))
    assert sender.lanes(message("a")) == (
        Lane("telegram:bot", 30, 1.0),
        Lane(f"telegram:chat:{SUBSCRIBER}", 1, 1.0),
    )
    assert sender.lanes(message("a", target=PAID_CHAT))[1] == Lane(
        f"telegram:chat:{PAID_CHAT}", 20, 60.0
    )
    fast = TelegramSender(Bot(TOKEN), limits_scale=10.0)  # the fake's benchmark scale
    per_s = [x.rate / x.per for x in fast.lanes(message("a"))]
    assert per_s == pytest.approx([300.0, 10.0], rel=1e-9)
    group = fast.lanes(message("a", target=PAID_CHAT))[1]
    assert group.rate / group.per * 60 == pytest.approx(200.0, rel=1e-9)


def test_errors_are_classified() -> None:
    with TelegramBotApiServer(TOKEN, enforce_limits=True) as server:
        server.add_user(SUBSCRIBER, "Sam", started=True)
        server.add_user(77, "Bea", started=True)
        server.add_chat(-4001, "group", "Old group")
        new_id = server.migrate_group(-4001)

        async def body(bot: Bot) -> None:
            sender = TelegramSender(bot)
            await sender.send(message("a"))
            with pytest.raises(DeliveryError) as flood:  # 1 message/s per private chat
                await sender.send(message("b"))
            assert flood.value.retry_after == 1.0 and not flood.value.permanent
            server.queue_faults("sendMessage", ["429:7"])
            with pytest.raises(DeliveryError) as queued:
                await sender.send(message("c", target=77))
            assert queued.value.retry_after == 7.0
            server.block_bot(77)
            with pytest.raises(DeliveryError) as blocked:
                await sender.send(message("d", target=77))
            assert blocked.value.blocked and "blocked by the user" in str(blocked.value)
            with pytest.raises(DeliveryError) as moved:
                await sender.send(message("e", target=-4001))
            assert moved.value.migrated_to == str(new_id)
            with pytest.raises(DeliveryError) as unknown:
                await sender.send(message("f", target=-4999))
            assert unknown.value.permanent and "chat not found" in str(unknown.value).lower()
            server.queue_faults("sendMessage", ["500"])
            await asyncio.sleep(1.1)
            with pytest.raises(DeliveryError) as transient:
                await sender.send(message("g"))
            e = transient.value
            assert not (e.permanent or e.blocked or e.migrated_to or e.retry_after)

        with_bot(server, body)
        assert [m.text for m in server.messages(SUBSCRIBER)] == ["signal a"]
        assert server.messages(77) == []


def test_probe_finds_a_delivered_message_and_not_an_unsent_one(tg: TelegramBotApiServer) -> None:
    tg.user_sends(SUBSCRIBER, "hi")  # 1

    async def body(bot: Bot) -> None:
        first = await TelegramSender(bot).send(message("a"))  # 2
        tg.user_sends(SUBSCRIBER, "what's new?")  # 3
        delivered = await TelegramSender(bot).send(message("b"))  # 4: the crash "forgets" it
        tg.user_sends(SUBSCRIBER, "thanks")  # 5
        reply = await bot.send_message(SUBSCRIBER, "a /status reply")  # 6: ours, not a signal
        tg.user_sends(SUBSCRIBER, "bye")  # 7
        fresh = TelegramSender(bot)  # a restarted dispatcher's sender: no memory
        assert await fresh.probe(message("b"), first.message_id) == delivered
        assert await fresh.probe(message("c"), delivered.message_id) is None  # never sent
        assert reply.message_id == 6

    with_bot(tg, body)
    sent = {m.message_id: m for m in tg.messages(SUBSCRIBER)}
    assert sorted(sent) == [2, 4, 6]  # nothing was sent by probing
    assert buttons(sent[4])[0]["callback_data"] == marker("b" * 32)  # untouched
    assert sent[6].reply_markup is None  # the probe took its marker off again
    assert [e["reply_markup"] for e in sent[6].edits] == [None, marker_markup("c")]


def test_probe_without_a_last_message_id_searches_from_the_first(
    tg: TelegramBotApiServer,
) -> None:
    tg.user_sends(OPERATOR, "hi")

    async def body(bot: Bot) -> None:
        delivered = await TelegramSender(bot).send(message("d", target=OPERATOR))
        tg.user_sends(OPERATOR, "ok")
        assert await TelegramSender(bot).probe(message("d", target=OPERATOR), None) == delivered

    with_bot(tg, body)


def marker_markup(key: str) -> dict[str, object]:
    cb = marker(key * 32)
    return {"inline_keyboard": [[{"text": "ℹ️ Signal ref", "callback_data": cb}]]}


def test_an_ambiguous_send_is_resolved_by_probing_not_resending() -> None:
    with TelegramBotApiServer(TOKEN, enforce_limits=True, limits_scale=5.0) as server:
        server.add_user(SUBSCRIBER, "Sam", started=True)

        async def body(bot: Bot) -> None:
            sender = TelegramSender(bot)
            assert await sender.send(message("a")) == Delivered("1")
            await asyncio.sleep(0.3)
            server.queue_faults("sendMessage", ["disconnect_after"])  # sent, answer lost
            assert await sender.send(message("b")) == Delivered("2")
            await asyncio.sleep(0.3)
            server.queue_faults("sendMessage", ["disconnect"])  # lost before Telegram acted
            with pytest.raises(DeliveryError) as lost:
                await sender.send(message("c"))
            assert not lost.value.permanent and lost.value.retry_after is None

        with_bot(server, body)
        assert [m.text for m in server.messages(SUBSCRIBER)] == ["signal a", "signal b"]


def test_probe_gives_up_loudly_when_the_window_is_all_strangers(
    tg: TelegramBotApiServer,
) -> None:
    for i in range(5):
        tg.user_sends(SUBSCRIBER, f"message {i}")

    async def body(bot: Bot) -> None:
        with pytest.raises(DeliveryError) as err:
            await TelegramSender(bot, probe_window=3).probe(message("a"), None)
        assert err.value.permanent and "cannot be told" in str(err.value)

    with_bot(tg, body)


def test_access_grant_join_once_revoke_and_rejoin(tg: TelegramBotApiServer) -> None:
    tg.add_chat(PAID_CHAT, "channel", "Signals realtime")
    tg.user_sends(SUBSCRIBER, "/start")
    tg.add_user(55, "Eve")
    now = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)

    async def body(bot: Bot) -> None:
        access = TelegramAccess(bot, now=lambda: now)
        assert not await access.is_member(PLAN, str(SUBSCRIBER))
        grant = await access.grant(PLAN, "sub-1", str(SUBSCRIBER))
        assert grant.invite_link and grant.expires_at == now + timedelta(hours=24)
        dm = tg.messages(SUBSCRIBER)[-1]
        assert grant.invite_link in (dm.text or "")
        assert buttons(dm) == [{"text": "Join", "url": grant.invite_link}]
        assert tg.user_joins(SUBSCRIBER, grant.invite_link) == "joined"
        assert tg.user_joins(55, grant.invite_link) == "limit_reached"  # single use
        assert await access.is_member(PLAN, str(SUBSCRIBER))
        assert await access.grant(PLAN, "sub-1", str(SUBSCRIBER)) == type(grant)()  # member

        await access.revoke(PLAN, "sub-1", str(SUBSCRIBER))
        assert tg.member_status(PAID_CHAT, SUBSCRIBER) == "left"  # removed, not banned
        assert not await access.is_member(PLAN, str(SUBSCRIBER))
        await access.revoke(PLAN, "sub-1", str(SUBSCRIBER))  # idempotent

        again = await access.grant(PLAN, "sub-1", str(SUBSCRIBER))  # re-subscribed
        assert again.invite_link != grant.invite_link
        replaced = await access.grant(PLAN, "sub-1", str(SUBSCRIBER))  # granted twice
        assert tg.user_joins(SUBSCRIBER, again.invite_link or "") == "revoked"
        assert tg.user_joins(SUBSCRIBER, replaced.invite_link or "") == "joined"
        assert await access.is_member(PLAN, str(SUBSCRIBER))

        unused = await access.grant(PLAN, "sub-2", "55")
        await access.revoke(PLAN, "sub-2", "55")  # never joined: the link dies
        assert tg.user_joins(55, unused.invite_link or "") == "revoked"

    with_bot(tg, body)
    created = [r.params for r in tg.requests("createChatInviteLink")]
    assert created[0]["name"] == "rt:sub-1" and all(len(p["name"]) <= 32 for p in created)
    assert {str(p["member_limit"]) for p in created} == {"1"}
