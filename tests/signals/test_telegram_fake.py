"""The local Telegram Bot API fake, driven by the real python-telegram-bot ``Bot`` over HTTP.

Each test proves a piece of the wire protocol PTB (and so our sender and bot) depends on: result
shapes PTB parses, Telegram's error bodies mapped to PTB's exceptions (RetryAfter, Forbidden,
ChatMigrated, Conflict, BadRequest), update confirmation, webhook delivery with the secret
header, invite-link and ban rules, and the flood lanes producing 429s exactly when exceeded.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import hashlib
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import httpx
import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, ChatMigrated, Conflict, Forbidden, InvalidToken, RetryAfter

from signals.local.telegram_server import TelegramBotApiServer

TOKEN = "5550001:AAfake-token_for_tests"
ADA, BOB, CYD = 101, 102, 103
GROUP, SUPER, CHANNEL = -4001, -1004002, -1004003
T = TypeVar("T")
NOT_MODIFIED = "^Message is not modified: specified new message content and reply markup are"


def png(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """A real PNG (valid IHDR/IDAT/IEND) of one colour."""
    row = b"\x00" + bytes([seed % 256, 80, 160]) * width
    body = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def with_bot(tg: TelegramBotApiServer, body: Callable[[telegram.Bot], Awaitable[T]]) -> T:
    """Run ``body(bot)`` with a real PTB Bot pointed at the fake."""

    async def main() -> T:
        async with telegram.Bot(TOKEN, base_url=tg.base_url) as bot:
            return await body(bot)

    return asyncio.run(main())


def texts(updates: tuple[telegram.Update, ...]) -> list[str | None]:
    return [u.message.text if u.message else None for u in updates]


def seconds(value: int | dtm.timedelta) -> float:
    """RetryAfter.retry_after is an int, or a timedelta under PTB's time-period switch."""
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


@pytest.fixture
def tg() -> Iterator[TelegramBotApiServer]:
    with TelegramBotApiServer(TOKEN, enforce_limits=False) as server:
        server.add_user(ADA, "Ada", "ada", started=True)
        server.add_user(BOB, "Bob", "bob", started=True)
        server.add_user(CYD, "Cyd")
        server.add_chat(GROUP, "group", "Signals group")
        server.add_chat(SUPER, "supergroup", "Signals VIP")
        server.add_chat(CHANNEL, "channel", "Signals channel", username="signals_chan")
        yield server


def test_get_me_and_wrong_token_and_unknown_method(tg: TelegramBotApiServer) -> None:
    me = with_bot(tg, lambda bot: bot.get_me())
    assert (me.id, me.is_bot, me.username) == (5550001, True, "signals_5550001_bot")

    async def wrong_token() -> None:
        async with telegram.Bot("5550001:wrong", base_url=tg.base_url) as bot:
            await bot.get_me()

    with pytest.raises(InvalidToken):
        asyncio.run(wrong_token())
    raw = httpx.post(f"{tg.base_url}{TOKEN}/getMee")
    assert raw.status_code == 404
    assert raw.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    raw = httpx.post(f"{tg.base_url}5550001:nope/getMe")
    assert raw.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    # method names are case-insensitive and GET with a query string works, as on Telegram
    assert httpx.get(f"{tg.api_url}/bot{TOKEN}/getme").json()["result"]["id"] == 5550001


def test_send_edit_not_modified_and_not_found(tg: TelegramBotApiServer) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Ack", callback_data="ack:1")]])

    async def body(bot: telegram.Bot) -> None:
        first = await bot.send_message(ADA, "<b>AAPL</b> long 100", parse_mode="HTML")
        second = await bot.send_message(ADA, "second", reply_markup=keyboard)
        assert (first.message_id, second.message_id) == (1, 2)
        assert first.text == "AAPL long 100"
        assert [(e.type, e.offset, e.length) for e in first.entities] == [("bold", 0, 4)]
        edited = await bot.edit_message_text("second, edited", ADA, 2, reply_markup=keyboard)
        assert isinstance(edited, telegram.Message)
        assert edited.edit_date is not None and edited.reply_markup == keyboard
        with pytest.raises(BadRequest, match=NOT_MODIFIED):
            await bot.edit_message_text("second, edited", ADA, 2, reply_markup=keyboard)
        with pytest.raises(BadRequest, match=NOT_MODIFIED):
            await bot.edit_message_reply_markup(ADA, 2, reply_markup=keyboard)
        await bot.edit_message_reply_markup(ADA, 2, reply_markup=None)  # removes the keyboard
        with pytest.raises(BadRequest, match="^Message to edit not found$"):
            await bot.edit_message_text("x", ADA, 99)
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(ADA, "x" * 4097)
        with pytest.raises(BadRequest, match="Button_data_invalid"):
            big = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="d" * 65)]])
            await bot.send_message(ADA, "too much data", reply_markup=big)
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(999_999, "nobody")

    with_bot(tg, body)
    sent = tg.messages(ADA)
    assert [m.text for m in sent] == ["AAPL long 100", "second, edited"]
    assert sent[1].reply_markup is None
    assert [e["text"] for e in sent[1].edits] == ["second", "second, edited"]
    assert sent[0].parse_mode == "HTML"


def test_a_user_message_cannot_be_edited_and_takes_an_id(tg: TelegramBotApiServer) -> None:
    tg.user_sends(ADA, "hello bot")  # message 1 in the private chat is the user's

    async def body(bot: telegram.Bot) -> None:
        reply = await bot.send_message(ADA, "hello Ada")
        assert reply.message_id == 2
        with pytest.raises(BadRequest, match="Message can't be edited"):
            await bot.edit_message_text("tampered", ADA, 1)

    with_bot(tg, body)


def test_send_photo_uploads_the_bytes(tg: TelegramBotApiServer) -> None:
    image = png(320, 200, seed=7)

    async def body(bot: telegram.Bot) -> telegram.Message:
        return await bot.send_photo(SUPER, image, caption="AAPL payoff")

    msg = with_bot(tg, body)
    biggest = msg.photo[-1]
    assert (biggest.width, biggest.height) == (320, 200)
    assert msg.caption == "AAPL payoff"
    recorded = tg.messages(SUPER)[-1]
    assert recorded.photo_sha256 == hashlib.sha256(image).hexdigest()

    async def resend_and_refuse(bot: telegram.Bot) -> None:
        again = await bot.send_photo(ADA, biggest.file_id)  # by file_id, no upload
        assert again.photo[-1].file_unique_id == biggest.file_unique_id
        with pytest.raises(BadRequest, match="Message caption is too long"):
            await bot.send_photo(ADA, image, caption="c" * 1025)
        with pytest.raises(BadRequest, match="Image_process_failed"):
            await bot.send_photo(ADA, b"not an image at all")

    with_bot(tg, resend_and_refuse)
    assert tg.messages(ADA)[-1].photo_sha256 == recorded.photo_sha256


def test_429_fault_is_retry_after_and_blocked_is_forbidden(tg: TelegramBotApiServer) -> None:
    tg.queue_faults("sendMessage", ["429:7", "ok"])
    tg.block_bot(BOB)

    async def body(bot: telegram.Bot) -> None:
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(ADA, "first try")
        assert seconds(caught.value.retry_after) == 7
        await bot.send_message(ADA, "second try")
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(BOB, "are you there")
        with pytest.raises(Forbidden, match="bot can't initiate conversation with a user"):
            await bot.send_message(CYD, "cold call")

    with_bot(tg, body)
    assert [m.text for m in tg.messages(ADA)] == ["second try"]
    body_429 = [r for r in tg.requests("sendMessage") if r.status == 429][0]
    assert body_429.description == "Too Many Requests: retry after 7"
    tg.user_sends(BOB, "/start")  # writing again lifts the block
    assert with_bot(tg, lambda bot: bot.send_message(BOB, "welcome back")).message_id == 2


def test_migrated_group_raises_chat_migrated_and_the_supergroup_works(
    tg: TelegramBotApiServer,
) -> None:
    new_id = tg.migrate_group(GROUP)

    async def body(bot: telegram.Bot) -> None:
        with pytest.raises(ChatMigrated) as caught:
            await bot.send_message(GROUP, "to the old id")
        assert caught.value.new_chat_id == new_id
        moved = await bot.send_message(new_id, "to the new id")
        assert moved.chat.type == "supergroup" and moved.chat.id == new_id

    with_bot(tg, body)
    raw = httpx.post(f"{tg.base_url}{TOKEN}/sendMessage", json={"chat_id": GROUP, "text": "x"})
    assert raw.status_code == 400
    assert raw.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: group chat was upgraded to a supergroup chat",
        "parameters": {"migrate_to_chat_id": new_id},
    }


def test_get_updates_offsets_confirm(tg: TelegramBotApiServer) -> None:
    for text in ("/start", "/plans", "hello"):
        tg.user_sends(ADA, text)

    async def body(bot: telegram.Bot) -> None:
        first = await bot.get_updates(limit=2)
        assert texts(first) == ["/start", "/plans"]
        assert first[0].message and first[0].message.entities[0].type == "bot_command"
        again = await bot.get_updates(offset=first[0].update_id)  # nothing confirmed yet
        assert len(again) == 3
        rest = await bot.get_updates(offset=first[-1].update_id + 1)
        assert texts(rest) == ["hello"]
        assert await bot.get_updates(offset=rest[-1].update_id + 1) == ()
        # a long poll returns as soon as an update arrives
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, tg.user_sends, ADA, "/status")
        started = time.monotonic()
        late = await bot.get_updates(offset=rest[-1].update_id + 1, timeout=5)
        assert texts(late) == ["/status"]
        assert 0.2 < time.monotonic() - started < 3.0

    with_bot(tg, body)


def test_get_updates_while_a_webhook_is_set_is_conflict(tg: TelegramBotApiServer) -> None:
    async def body(bot: telegram.Bot) -> None:
        await bot.set_webhook("http://127.0.0.1:9/hook")
        with pytest.raises(Conflict, match="can't use getUpdates method while webhook is active"):
            await bot.get_updates()
        await bot.delete_webhook()
        assert await bot.get_updates() == ()

    with_bot(tg, body)
