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
from typing import Any, TypeVar

import httpx
import pytest
import telegram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)

from signals.local.telegram_server import TelegramBotApiServer
from signals.local.uvicorn_thread import UvicornThread

TOKEN = "5550001:AAfake-token_for_tests"
ADA, BOB, CYD = 101, 102, 103
GROUP, SUPER, CHANNEL = -4001, -1004002, -1004003
T = TypeVar("T")
# PTB 22 warns whenever RetryAfter.retry_after is read (int today, timedelta in PTB 23)
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
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
        async with telegram.Bot(TOKEN, base_url=tg.base_url, base_file_url=tg.base_file_url) as bot:
            return await body(bot)

    return asyncio.run(main())


def texts(updates: tuple[telegram.Update, ...]) -> list[str | None]:
    return [u.message.text if u.message else None for u in updates]


def seconds(error: RetryAfter) -> float:
    """RetryAfter.retry_after is an int, or a timedelta under PTB's time-period switch."""
    value = error.retry_after
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
    assert httpx.get(f"{tg.root_url}/bot{TOKEN}/getme").json()["result"]["id"] == 5550001


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
        stored = await bot.get_file(biggest.file_id)
        assert bytes(await stored.download_as_bytearray()) == image
        again = await bot.send_photo(ADA, biggest.file_id)  # by file_id, no upload
        assert again.photo[-1].file_unique_id == biggest.file_unique_id
        with pytest.raises(BadRequest, match="Message caption is too long"):
            await bot.send_photo(ADA, image, caption="c" * 1025)
        with pytest.raises(BadRequest, match="Image_process_failed"):
            await bot.send_photo(ADA, b"not an image at all")
        edited = await bot.edit_message_caption(ADA, again.message_id, caption="new caption")
        assert isinstance(edited, telegram.Message) and edited.caption == "new caption"
        with pytest.raises(BadRequest, match="There is no caption in the message to edit"):
            text_only = await bot.send_message(ADA, "text only")
            await bot.edit_message_caption(ADA, text_only.message_id, caption="x")

    with_bot(tg, resend_and_refuse)
    assert tg.messages(ADA)[0].photo_sha256 == recorded.photo_sha256


def test_429_fault_is_retry_after_and_blocked_is_forbidden(tg: TelegramBotApiServer) -> None:
    tg.queue_faults("sendMessage", ["429:7", "ok"])
    tg.block_bot(BOB)

    async def body(bot: telegram.Bot) -> None:
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(ADA, "first try")
        assert seconds(caught.value) == 7
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
    link = with_bot(tg, lambda bot: bot.create_chat_invite_link(GROUP)).invite_link
    new_id = tg.migrate_group(GROUP)
    assert tg.user_joins(ADA, link) == "joined"  # the link now admits to the supergroup
    assert tg.member_status(new_id, ADA) == "member"

    async def body(bot: telegram.Bot) -> None:
        with pytest.raises(ChatMigrated) as caught:
            await bot.send_message(GROUP, "to the old id")
        assert caught.value.new_chat_id == new_id
        moved = await bot.send_message(new_id, "to the new id")
        assert moved.chat.type == "supergroup" and moved.chat.id == new_id
        assert (await bot.revoke_chat_invite_link(new_id, link)).is_revoked

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


def test_webhook_delivery_carries_the_secret_and_retries(tg: TelegramBotApiServer) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    answers = [500, 200]  # the receiver fails once, then accepts

    async def hook(request: Request) -> Response:
        received.append(
            (request.headers.get("x-telegram-bot-api-secret-token"), await request.json())
        )
        status = answers.pop(0) if answers else 200
        return JSONResponse({}, status_code=status)

    receiver = UvicornThread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])).start()
    try:
        url = f"{receiver.url}/hook"

        async def body(bot: telegram.Bot) -> telegram.WebhookInfo:
            assert await bot.set_webhook(url, secret_token="s3cret-Token_1")
            tg.user_sends(ADA, "/start")
            deadline = time.monotonic() + 5
            while tg.pending_updates() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return await bot.get_webhook_info()

        info = with_bot(tg, body)
    finally:
        receiver.stop()
    assert [secret for secret, _ in received] == ["s3cret-Token_1"] * 2
    assert received[0][1] == received[1][1]  # the same update again after the 500
    assert received[0][1]["message"]["text"] == "/start"
    assert info.url == url and info.pending_update_count == 0
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert [d.status for d in tg.webhook_deliveries()] == [500, 200]


def test_invite_link_with_member_limit_one_admits_one(tg: TelegramBotApiServer) -> None:
    async def body(bot: telegram.Bot) -> telegram.ChatInviteLink:
        await bot.set_webhook("")  # nothing set: a no-op that returns True
        link = await bot.create_chat_invite_link(SUPER, member_limit=1, name="ada-rt")
        with pytest.raises(BadRequest, match="^Member limit can't be specified"):
            await bot.create_chat_invite_link(SUPER, member_limit=1, creates_join_request=True)
        with pytest.raises(BadRequest, match="Usage_limit_invalid"):
            await bot.create_chat_invite_link(SUPER, member_limit=100_000)
        return link

    link = with_bot(tg, body)
    assert (link.member_limit, link.name, link.is_revoked) == (1, "ada-rt", False)
    assert tg.user_joins(ADA, link.invite_link) == "joined"
    assert tg.user_joins(BOB, link.invite_link) == "limit_reached"
    assert (tg.member_status(SUPER, ADA), tg.member_status(SUPER, BOB)) == ("member", "left")


def test_chat_member_updates_only_when_allowed(tg: TelegramBotApiServer) -> None:
    async def body(bot: telegram.Bot) -> tuple[telegram.Update, ...]:
        await bot.get_updates(allowed_updates=["chat_member"])  # persists for later calls
        link = await bot.create_chat_invite_link(SUPER)
        assert tg.user_joins(ADA, link.invite_link) == "joined"
        return await bot.get_updates()

    updates = with_bot(tg, body)
    assert len(updates) == 1 and updates[0].chat_member is not None
    change = updates[0].chat_member
    assert (change.old_chat_member.status, change.new_chat_member.status) == ("left", "member")
    assert change.invite_link is not None and change.from_user.id == ADA


def test_revoked_expired_and_approval_links() -> None:
    now = [1_800_000_000.0]  # the fake's clock, moved by hand
    tg = TelegramBotApiServer(TOKEN, enforce_limits=False, clock=lambda: now[0])
    tg.start()
    tg.add_user(ADA, "Ada", started=True)
    tg.add_user(BOB, "Bob", started=True)
    tg.add_chat(SUPER, "supergroup", "Signals VIP")

    async def body(bot: telegram.Bot) -> None:
        revoked = await bot.create_chat_invite_link(SUPER)
        assert (await bot.revoke_chat_invite_link(SUPER, revoked.invite_link)).is_revoked
        assert tg.user_joins(ADA, revoked.invite_link) == "revoked"
        soon = await bot.create_chat_invite_link(SUPER, expire_date=int(now[0]) + 60)
        approval = await bot.create_chat_invite_link(SUPER, creates_join_request=True)
        assert tg.user_joins(BOB, approval.invite_link) == "requested"
        updates = await bot.get_updates()
        request = updates[-1].chat_join_request
        assert request is not None and request.from_user.id == BOB
        assert await bot.approve_chat_join_request(SUPER, BOB)
        with pytest.raises(BadRequest, match="Hide_requester_missing"):
            await bot.decline_chat_join_request(SUPER, BOB)
        now[0] += 59
        assert tg.user_joins(BOB, soon.invite_link) == "already_member"
        now[0] += 1  # the link's expiry date has come
        assert tg.user_joins(ADA, soon.invite_link) == "expired"

    try:
        with_bot(tg, body)
    finally:
        tg.stop()
    assert (tg.member_status(SUPER, ADA), tg.member_status(SUPER, BOB)) == ("left", "member")


def test_link_refusals_in_telegram_order(tg: TelegramBotApiServer) -> None:
    tg.add_chat(-1004009, "supergroup", "Not ours", bot_is_admin=False)

    async def body(bot: telegram.Bot) -> telegram.ChatInviteLink:
        with pytest.raises(BadRequest, match="^Can't invite members to a private chat$"):
            await bot.create_chat_invite_link(ADA, member_limit=1, creates_join_request=True)
        with pytest.raises(BadRequest, match="^Member limit can't be specified"):
            await bot.create_chat_invite_link(-1004009, member_limit=1, creates_join_request=True)
        with pytest.raises(BadRequest, match="Not enough rights to manage chat invite link"):
            await bot.create_chat_invite_link(-1004009)
        with pytest.raises(BadRequest, match="Expire_date_invalid"):
            await bot.create_chat_invite_link(SUPER, expire_date=int(time.time()) - 10)
        await bot.leave_chat(-1004009)
        with pytest.raises(Forbidden, match="bot is not a member of the supergroup chat"):
            await bot.create_chat_invite_link(-1004009)
        return await bot.create_chat_invite_link(SUPER, member_limit=0)  # 0: no limit

    assert with_bot(tg, body).member_limit is None


def test_ban_then_unban_only_if_banned(tg: TelegramBotApiServer) -> None:
    link = with_bot(tg, lambda bot: bot.create_chat_invite_link(SUPER)).invite_link
    assert tg.user_joins(ADA, link) == "joined"
    assert tg.user_joins(BOB, link) == "joined"

    async def body(bot: telegram.Bot) -> None:
        assert await bot.ban_chat_member(SUPER, ADA)
        banned = await bot.get_chat_member(SUPER, ADA)
        assert isinstance(banned, telegram.ChatMemberBanned)
        assert tg.user_joins(ADA, link) == "banned"
        assert await bot.unban_chat_member(SUPER, ADA, only_if_banned=True)
        assert tg.member_status(SUPER, ADA) == "left"
        # only_if_banned leaves a current member alone; without it the member is removed
        assert await bot.unban_chat_member(SUPER, BOB, only_if_banned=True)
        assert tg.member_status(SUPER, BOB) == "member"
        assert await bot.unban_chat_member(SUPER, BOB)
        assert tg.member_status(SUPER, BOB) == "left"
        with pytest.raises(BadRequest, match="supergroup and channel chats only"):
            await bot.unban_chat_member(GROUP, ADA)

    with_bot(tg, body)
    assert tg.user_joins(ADA, link) == "joined"  # unbanned: the link works again


def test_temporary_ban_until_date_runs_out() -> None:
    now = [1_800_000_000.0]
    with TelegramBotApiServer(TOKEN, clock=lambda: now[0]) as tg:
        tg.add_user(ADA, "Ada")
        tg.add_chat(SUPER, "supergroup", "VIP")
        tg.add_member(SUPER, ADA)
        until = int(now[0]) + 3600

        async def body(bot: telegram.Bot) -> list[telegram.ChatMember]:
            await bot.ban_chat_member(SUPER, ADA, until_date=until)
            banned = await bot.get_chat_member(SUPER, ADA)
            await bot.ban_chat_member(SUPER, ADA, until_date=int(now[0]) + 10)  # < 30 s: forever
            return [banned, await bot.get_chat_member(SUPER, ADA)]

        temporary, forever = with_bot(tg, body)
        assert isinstance(temporary, telegram.ChatMemberBanned)
        assert int(temporary.until_date.timestamp()) == until
        assert isinstance(forever, telegram.ChatMemberBanned)
        assert forever.until_date.timestamp() == 0  # Bot API: 0 = banned forever
        with_bot(tg, lambda bot: bot.ban_chat_member(SUPER, ADA, until_date=until))
        now[0] = until - 1
        assert tg.member_status(SUPER, ADA) == "kicked"
        now[0] = until
        assert tg.member_status(SUPER, ADA) == "left"  # the ban ran out


def test_per_chat_limit_gives_429_exactly_when_exceeded() -> None:
    # limits_scale=5: 5 messages per 1 s per private chat, 150/s overall
    with TelegramBotApiServer(TOKEN, limits_scale=5.0) as tg:
        tg.add_user(ADA, "Ada", started=True)
        tg.add_user(BOB, "Bob", started=True)

        async def body(bot: telegram.Bot) -> None:
            started = time.monotonic()
            for i in range(5):
                await bot.send_message(ADA, f"burst {i}")
            assert time.monotonic() - started < 0.8  # well inside the 1 s window
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(ADA, "one too many")
            assert seconds(caught.value) == 1
            await bot.send_message(BOB, "another chat has its own lane")
            await asyncio.sleep(1.2)  # the window has rolled past the burst
            await bot.send_message(ADA, "after the window")

        with_bot(tg, body)
        stats = tg.flood_stats()
    assert stats.rejected == {"private": 1}
    assert stats.rejected_by_lane == {f"private:{ADA}": 1}
    assert len(stats.sends) == 7
    # 6 sends to Ada at 5 per second cannot take less than one window
    assert stats.floor_s() == pytest.approx(1.0)
    assert stats.span_s() >= stats.floor_s()
    tg.reset_flood()
    assert tg.flood_stats().sends == [] and tg.flood_stats().rejected == {}
    assert stats.limits["private"].count == 5 and stats.limits["global"].count == 150


def test_global_limit_gives_429_across_chats() -> None:
    # limits_scale=0.2: 6 messages per second overall (1 per 5 s per chat), so the 7th send to a
    # 7th chat within the second is refused by the global lane alone
    with TelegramBotApiServer(TOKEN, limits_scale=0.2) as tg:
        users = list(range(1000, 1007))
        for uid in users:
            tg.add_user(uid, f"user {uid}", started=True)

        async def body(bot: telegram.Bot) -> None:
            started = time.monotonic()
            for uid in users[:6]:
                await bot.send_message(uid, "fan-out")
            assert time.monotonic() - started < 0.8  # well inside the 1 s window
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(users[6], "the 7th")
            assert seconds(caught.value) == 1
            await asyncio.sleep(1.2)
            await bot.send_message(users[6], "the 7th, later")

        with_bot(tg, body)
        stats = tg.flood_stats()
    assert stats.rejected == {"global": 1}
    assert len(stats.sends) == 7


def test_group_lane_is_per_minute() -> None:
    # limits_scale=0.1: 2 messages per 60 s per group; the third is refused with ~60 s to wait
    with TelegramBotApiServer(TOKEN, limits_scale=0.1) as tg:
        tg.add_chat(SUPER, "supergroup", "VIP")

        async def body(bot: telegram.Bot) -> None:
            await bot.send_message(SUPER, "one")
            await bot.send_message(SUPER, "two")
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(SUPER, "three")
            assert 55 <= seconds(caught.value) <= 60

        with_bot(tg, body)
    assert tg.flood_stats().rejected == {"group": 1}


def test_callback_query_roundtrip(tg: TelegramBotApiServer) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Confirm", callback_data="halt:ok")]])
    sent = with_bot(tg, lambda bot: bot.send_message(ADA, "Halt trading?", reply_markup=keyboard))
    query_id = tg.user_presses(ADA, ADA, sent.message_id, "halt:ok")

    async def body(bot: telegram.Bot) -> telegram.CallbackQuery:
        (update,) = await bot.get_updates()
        query = update.callback_query
        assert query is not None and query.id == query_id
        assert await bot.answer_callback_query(query.id, text="Halted")
        with pytest.raises(BadRequest, match="^Query is too old and response timeout expired"):
            await bot.answer_callback_query(query.id, text="twice")
        return query

    query = with_bot(tg, body)
    assert (query.data, query.from_user.id) == ("halt:ok", ADA)
    assert isinstance(query.message, telegram.Message)
    assert query.message.reply_markup == keyboard
    assert tg.callback_answer(query_id) == {"text": "Halted", "show_alert": False, "url": None}


def test_commands_are_kept_per_scope(tg: TelegramBotApiServer) -> None:
    async def body(bot: telegram.Bot) -> None:
        await bot.set_my_commands([("plans", "List plans"), ("status", "Your subscription")])
        private = telegram.BotCommandScopeChat(ADA)
        await bot.set_my_commands([("halt", "Stop trading")], scope=private)
        assert [c.command for c in await bot.get_my_commands()] == ["plans", "status"]
        assert [c.command for c in await bot.get_my_commands(scope=private)] == ["halt"]
        with pytest.raises(BadRequest, match="Bot_command_invalid"):
            await bot.set_my_commands([("Bad-Name", "x")])
        await bot.delete_my_commands(scope=private)
        assert await bot.get_my_commands(scope=private) == ()

    with_bot(tg, body)


def test_disconnect_faults_and_the_ambiguous_send(tg: TelegramBotApiServer) -> None:
    tg.queue_faults("sendMessage", ["disconnect", "disconnect_after", "500", "502"])

    async def body(bot: telegram.Bot) -> None:
        dropped = "RemoteProtocolError"  # httpx: the server closed mid-answer
        for expected in (dropped, dropped, "^Internal Server Error$", "Bad Gateway"):
            with pytest.raises(NetworkError, match=expected):
                await bot.send_message(ADA, "sent?")

    with_bot(tg, body)
    # "disconnect" dropped the request before acting, "disconnect_after" acted and then dropped
    assert [m.text for m in tg.messages(ADA)] == ["sent?"]
    assert [r.status for r in tg.requests("sendmessage")] == [0, 200, 500, 502]
    with pytest.raises(ValueError, match="unknown fault '429:soon'"):
        tg.queue_faults("sendMessage", ["429:soon"])
    tg.queue_faults("sendMessage", ["403:Forbidden: user is deactivated", "sleep:0.3"])

    async def more(bot: telegram.Bot) -> float:
        with pytest.raises(Forbidden, match="user is deactivated"):
            await bot.send_message(ADA, "x")
        started = time.monotonic()
        await bot.send_message(ADA, "slow but delivered")
        return time.monotonic() - started

    assert with_bot(tg, more) >= 0.3
    assert tg.messages(ADA)[-1].text == "slow but delivered"


def test_a_second_poller_ends_the_first_with_conflict(tg: TelegramBotApiServer) -> None:
    async def body(bot: telegram.Bot) -> None:
        async with telegram.Bot(TOKEN, base_url=tg.base_url) as second_instance:
            first = asyncio.create_task(bot.get_updates(timeout=5))
            await asyncio.sleep(0.3)
            assert await second_instance.get_updates(timeout=0) == ()
            with pytest.raises(Conflict, match="terminated by other getUpdates request"):
                await first

    with_bot(tg, body)


def test_markup_errors_match_telegram(tg: TelegramBotApiServer) -> None:
    async def body(bot: telegram.Bot) -> telegram.Message:
        with pytest.raises(BadRequest, match=r"^Can't parse entities: character '\.' is reserved"):
            await bot.send_message(ADA, "Price 1.5", parse_mode="MarkdownV2")
        with pytest.raises(BadRequest, match='end tag corresponding to start tag "b"'):
            await bot.send_message(ADA, "<b>open", parse_mode="HTML")
        with pytest.raises(BadRequest, match='unsupported start tag "div" at byte offset 0'):
            await bot.send_message(ADA, "<div>x</div>", parse_mode="HTML")
        return await bot.send_message(
            ADA, "*AAPL* \\+1\\.5% [chart](https://example.com/c) ✅ `x_y`", parse_mode="MarkdownV2"
        )

    msg = with_bot(tg, body)
    assert msg.text == "AAPL +1.5% chart ✅ x_y"
    kinds = [(e.type, e.offset, e.length) for e in msg.entities]
    assert kinds == [("bold", 0, 4), ("text_link", 11, 5), ("code", 19, 3)]
    assert msg.entities[1].url == "https://example.com/c"


def test_entity_offsets_count_utf16_units(tg: TelegramBotApiServer) -> None:
    msg = with_bot(tg, lambda bot: bot.send_message(ADA, "📈 <b>up</b>", parse_mode="HTML"))
    assert [(e.offset, e.length) for e in msg.entities] == [(3, 2)]  # the emoji is 2 units
    assert msg.parse_entity(msg.entities[0]) == "up"


def test_channels_groups_and_kicked_bots(tg: TelegramBotApiServer) -> None:
    tg.add_chat(-1004010, "channel", "Read only", bot_is_admin=False)
    tg.add_member(GROUP, ADA)

    async def body(bot: telegram.Bot) -> None:
        post = await bot.send_message("@signals_chan", "channel post")
        assert post.sender_chat is not None and post.sender_chat.id == CHANNEL
        assert post.from_user is None
        with pytest.raises(BadRequest, match="Need administrator rights in the channel chat"):
            await bot.send_message(-1004010, "not allowed")
        assert await bot.leave_chat(GROUP)
        with pytest.raises(Forbidden, match="bot is not a member of the group chat"):
            await bot.send_message(GROUP, "gone")
        assert await bot.get_chat_member_count(SUPER) == 1  # the bot itself
        admins = await bot.get_chat_administrators(SUPER)
        assert [a.user.id for a in admins] == [5550001]

    with_bot(tg, body)


def test_group_privacy_mode_delivers_only_commands(tg: TelegramBotApiServer) -> None:
    tg.add_chat(-4020, "group", "Chatty", bot_is_admin=False)
    tg.add_member(-4020, ADA)
    assert tg.user_sends(ADA, "just chatting", chat_id=-4020) == {}
    update = tg.user_sends(ADA, "/status@signals_5550001_bot", chat_id=-4020)
    assert update["message"]["entities"][0] == {"type": "bot_command", "offset": 0, "length": 27}
    assert tg.user_sends(ADA, "/status@some_other_bot", chat_id=-4020) == {}
    answer = with_bot(tg, lambda bot: bot.send_message(-4020, "Status: flat"))
    reply = tg.user_sends(ADA, "thanks", chat_id=-4020, reply_to=answer.message_id)
    assert reply["message"]["reply_to_message"]["text"] == "Status: flat"
    assert [m.message_id for m in tg.all_messages(-4020)] == [1, 2, 3, 4, 5]


def test_delete_message_and_webhook_reply_method(tg: TelegramBotApiServer) -> None:
    async def reply_with_method(request: Request) -> Response:
        update = await request.json()
        chat_id = update["message"]["chat"]["id"]
        return JSONResponse({"method": "sendMessage", "chat_id": chat_id, "text": "pong"})

    receiver = UvicornThread(Starlette(routes=[Route("/h", reply_with_method, methods=["POST"])]))
    receiver.start()
    try:

        async def body(bot: telegram.Bot) -> None:
            first = await bot.send_message(ADA, "to be deleted")
            assert await bot.delete_message(ADA, first.message_id)
            with pytest.raises(BadRequest, match="Message to delete not found"):
                await bot.delete_message(ADA, first.message_id)
            await bot.set_webhook(f"{receiver.url}/h", drop_pending_updates=True)
            tg.user_sends(ADA, "ping")
            deadline = time.monotonic() + 5
            while not tg.messages(ADA) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)

        with_bot(tg, body)
    finally:
        receiver.stop()
    assert [m.text for m in tg.messages(ADA)] == ["pong"]
    assert [m.text for m in tg.messages(ADA, include_deleted=True)] == ["to be deleted", "pong"]


def unknown_fields(obj: object, path: str = "result") -> list[str]:
    """Fields PTB did not recognise (it keeps them in ``api_kwargs``), anywhere inside ``obj``."""
    if isinstance(obj, (tuple, list)):
        return [f for i, item in enumerate(obj) for f in unknown_fields(item, f"{path}[{i}]")]
    if not isinstance(obj, telegram.TelegramObject):
        return []
    found = [f"{path}.{key}" for key in obj.api_kwargs]
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if not name.startswith("_"):
                found += unknown_fields(getattr(obj, name, None), f"{path}.{name}")
    return found


def test_every_result_uses_only_bot_api_field_names(tg: TelegramBotApiServer) -> None:
    tg.add_user(CYD + 1, "Owner")
    tg.add_chat(-1004050, "supergroup", "Owned", creator_id=CYD + 1)
    tg.add_member(-1004050, ADA, "restricted")
    tg.add_member(-1004050, BOB, "administrator")
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go")]])

    async def body(bot: telegram.Bot) -> list[object]:
        await bot.get_updates(allowed_updates=list(telegram.Update.ALL_TYPES))
        got: list[object] = [await bot.get_me()]
        sent = await bot.send_message(ADA, "<i>hi</i>", parse_mode="HTML", reply_markup=keyboard)
        got += [sent, await bot.edit_message_text("edited", ADA, sent.message_id)]
        photo = await bot.send_photo(CHANNEL, png(), caption="*c*", parse_mode="Markdown")
        got += [photo, await bot.get_file(photo.photo[0].file_id)]
        got += [await bot.get_chat(c) for c in (ADA, GROUP, SUPER, CHANNEL)]
        got += [await bot.get_chat_member(-1004050, u) for u in (CYD + 1, ADA, BOB, CYD)]
        link = await bot.create_chat_invite_link(-1004050, creates_join_request=True, name="n")
        got += [link, await bot.create_chat_invite_link(-1004050, member_limit=5)]
        await bot.set_my_commands([("plans", "List plans")])
        got += [await bot.get_my_commands(), await bot.get_chat_administrators(-1004050)]
        tg.user_sends(ADA, "/start")
        tg.user_presses(ADA, ADA, sent.message_id, "go")
        tg.user_joins(CYD, link.invite_link)
        await bot.approve_chat_join_request(-1004050, CYD)
        await bot.ban_chat_member(-1004050, CYD)
        tg.block_bot(BOB)
        tg.migrate_group(GROUP)
        got.append(await bot.get_updates())
        await bot.set_webhook("http://127.0.0.1:9/unreachable")
        await asyncio.sleep(0.3)  # the fake has tried to deliver and failed
        got.append(await bot.get_webhook_info())
        return got

    results = with_bot(tg, body)
    updates = results[-2]
    assert isinstance(updates, tuple)
    kinds = {k for u in updates for k in u.to_dict() if k != "update_id"}
    expected = {"message", "callback_query", "chat_join_request", "chat_member", "my_chat_member"}
    assert expected <= kinds
    info = results[-1]
    assert isinstance(info, telegram.WebhookInfo) and info.last_error_message
    assert [f for r in results for f in unknown_fields(r)] == []


def test_concurrent_sends_are_admitted_exactly_up_to_the_lane() -> None:
    # 12 sends to one supergroup at once, 5 per minute allowed (limits_scale=0.25): exactly 5
    # land and 7 get 429, however the requests interleave (a minute-long window: no timing race)
    with TelegramBotApiServer(TOKEN, limits_scale=0.25) as tg:
        tg.add_chat(SUPER, "supergroup", "VIP")

        async def body(bot: telegram.Bot) -> list[object]:
            sends = [bot.send_message(SUPER, f"n{i}") for i in range(12)]
            return list(await asyncio.gather(*sends, return_exceptions=True))

        outcomes = with_bot(tg, body)
        assert sum(isinstance(o, telegram.Message) for o in outcomes) == 5
        assert sum(isinstance(o, RetryAfter) for o in outcomes) == 7
        assert [m.message_id for m in tg.messages(SUPER)] == [1, 2, 3, 4, 5]
        assert tg.flood_stats().rejected == {"group": 7}


def test_bad_construction_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="token must look like '<bot id>:<secret>'"):
        TelegramBotApiServer("not-a-token")
    with pytest.raises(ValueError, match="limits_scale must be > 0"):
        TelegramBotApiServer(TOKEN, limits_scale=0)
    with TelegramBotApiServer(TOKEN) as tg:
        with pytest.raises(ValueError, match="does not fit a supergroup"):
            tg.add_chat(-4001, "supergroup", "wrong id")
        with pytest.raises(ValueError, match="no user 77: add_user"):
            tg.user_sends(77, "hi")
        tg.add_user(ADA, "Ada", started=True)
        assert with_bot(tg, lambda bot: bot.send_chat_action(ADA, "upload_photo"))


def test_pre_languages_and_blockquotes(tg: TelegramBotApiServer) -> None:
    async def body(bot: telegram.Bot) -> list[telegram.Message]:
        html_pre = '<pre><code class="language-python">x = 1</code></pre>'
        quoted = ">AAPL long\n>stop 180\\.5\nthat is all"
        with pytest.raises(BadRequest, match='must have class "tg-spoiler"'):
            await bot.send_message(ADA, "<span>hidden</span>", parse_mode="HTML")
        return [
            await bot.send_message(ADA, html_pre, parse_mode="HTML"),
            await bot.send_message(ADA, quoted, parse_mode="MarkdownV2"),
        ]

    pre, quote = with_bot(tg, body)
    assert (pre.text, pre.entities[0].type, pre.entities[0].language) == ("x = 1", "pre", "python")
    assert quote.text == "AAPL long\nstop 180.5\nthat is all"
    assert [(e.type, e.offset, e.length) for e in quote.entities] == [("blockquote", 0, 20)]
