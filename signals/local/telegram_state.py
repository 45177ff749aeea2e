"""What the fake Telegram Bot API server remembers, and how it renders it as Bot API objects.

Users, chats (private, group, supergroup, channel) with their members, every message per chat
(ids sequential per chat; a user's message in a private chat takes an id too), uploaded files,
invite links, pending join requests and the update queue. The ``*_json`` methods give the Bot
API's result shapes (User, Chat, ChatFullInfo, Message, ChatMember, ChatInviteLink) with the
field names of core.telegram.org/bots/api, which python-telegram-bot's ``de_json`` parses.
Not thread-safe by itself: the server holds its lock around every call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from signals.local.telegram_wire import bad_request, forbidden

# updates delivered when allowed_updates is empty or never set (Bot API getUpdates docs)
NOT_DEFAULT_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
)
RESTRICTED_RIGHTS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
    "can_edit_tag",
    "can_react_to_messages",
)
CHAT_TYPES = ("private", "group", "supergroup", "channel")
MEMBER_STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")


@dataclass
class User:
    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None
    is_bot: bool = False
    started: bool = False  # has opened a private chat with the bot
    blocked: bool = False  # has blocked the bot

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.last_name:
            out["last_name"] = self.last_name
        if self.username:
            out["username"] = self.username
        return out


@dataclass
class Member:
    status: str  # one of MEMBER_STATUSES
    until_date: int = 0  # for "kicked": 0 = forever


@dataclass
class Message:
    """One message in a chat, as the fake keeps it (the control API returns copies)."""

    message_id: int
    chat_id: int
    from_id: int | None  # None for a channel post
    date: int
    text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    photo: list[dict[str, Any]] | None = None
    photo_sha256: str | None = None
    reply_markup: dict[str, Any] | None = None
    parse_mode: str | None = None
    reply_to: int | None = None
    edit_date: int | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)  # earlier versions, oldest first
    deleted: bool = False
    service: dict[str, Any] = field(default_factory=dict)  # new_chat_members, migrate_*...


@dataclass(frozen=True, slots=True)
class StoredFile:
    """An uploaded file (every PhotoSize of a photo serves the original bytes)."""

    data: bytes
    file_unique_id: str
    file_path: str


@dataclass
class InviteLink:
    invite_link: str
    chat_id: int
    creator_id: int
    creates_join_request: bool = False
    is_primary: bool = False
    is_revoked: bool = False
    name: str | None = None
    expire_date: int | None = None
    member_limit: int | None = None
    joined: int = 0
    pending: set[int] = field(default_factory=set)


@dataclass
class Chat:
    id: int
    type: str
    title: str | None = None
    username: str | None = None
    members: dict[int, Member] = field(default_factory=dict)
    messages: dict[int, Message] = field(default_factory=dict)
    next_message_id: int = 1
    migrated_to: int | None = None
    invite_links: dict[str, InviteLink] = field(default_factory=dict)
    join_requests: dict[int, str] = field(default_factory=dict)  # user id -> link used


class State:
    """The whole fake Telegram as seen by one bot."""

    def __init__(self, bot: User, *, clock: Callable[[], float] = time.time) -> None:
        self.bot = bot
        self.clock = clock
        self.users: dict[int, User] = {bot.id: bot}
        self.chats: dict[int, Chat] = {}
        self.files: dict[str, StoredFile] = {}  # file_id -> the file
        self.updates: list[dict[str, Any]] = []
        self.next_update_id = 700_000_001
        self.allowed_updates: list[str] = []
        self.dropped_updates = 0  # filtered out by allowed_updates
        self.next_link = 1
        self.next_migrated_id = -1_001_900_000_001
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}  # (scope, language)
        self.callbacks: dict[str, dict[str, Any] | None] = {}  # query id -> the bot's answer

    def now(self) -> int:
        return int(self.clock())

    # -- lookups ---------------------------------------------------------------------------
    def user(self, user_id: int) -> User:
        user = self.users.get(user_id)
        if user is None:
            raise bad_request("user not found")
        return user

    def chat(self, raw: Any) -> Chat:
        """The chat a ``chat_id`` parameter names (id or ``@username``), with Telegram's errors."""
        chat: Chat | None = None
        if isinstance(raw, str) and raw.startswith("@"):
            chat = next((c for c in self.chats.values() if c.username == raw[1:]), None)
        else:
            try:
                chat = self.chats.get(int(raw))
            except (TypeError, ValueError):
                chat = None
        if chat is None:
            known = self.users.get(_as_int(raw) or 0)
            if known is not None and not known.is_bot:  # a user the bot knows, never started
                raise forbidden("bot can't initiate conversation with a user")
            raise bad_request("chat not found" if raw not in (None, "") else "chat_id is empty")
        if chat.migrated_to is not None:
            raise bad_request(
                "group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        return chat

    def status(self, chat: Chat, user_id: int) -> Member:
        """A member's status now (a temporary ban that ran out reads as ``left``)."""
        member = chat.members.get(user_id)
        if member is None:
            return Member("left")
        if member.status == "kicked" and member.until_date and member.until_date <= self.now():
            member.status, member.until_date = "left", 0
        return member

    def bot_member(self, chat: Chat) -> Member:
        return self.status(chat, self.bot.id)

    def bot_is_admin(self, chat: Chat) -> bool:
        return self.bot_member(chat).status in ("administrator", "creator")

    def check_can_send(self, chat: Chat) -> None:
        """Raise Telegram's 403/400 when the bot may not post in ``chat``."""
        if chat.type == "private":
            user = self.users[chat.id]
            if user.blocked:
                raise forbidden("bot was blocked by the user")
            if not user.started:
                raise forbidden("bot can't initiate conversation with a user")
            return
        status = self.bot_member(chat).status
        if chat.type == "channel":
            if status in ("left", "kicked"):
                raise forbidden("bot is not a member of the channel chat")
            if status not in ("administrator", "creator"):
                raise bad_request("need administrator rights in the channel chat")
        elif status == "kicked":
            raise forbidden(f"bot was kicked from the {chat.type} chat")
        elif status == "left":
            raise forbidden(f"bot is not a member of the {chat.type} chat")

    def message(self, chat: Chat, message_id: int | None, missing: str) -> Message:
        msg = chat.messages.get(message_id or 0)
        if msg is None or msg.deleted:
            raise bad_request(missing)
        return msg

    # -- building ----------------------------------------------------------------------------
    def add_chat(self, chat: Chat) -> Chat:
        if chat.type not in CHAT_TYPES:
            raise ValueError(f"chat type {chat.type!r} is not one of {CHAT_TYPES}")
        if chat.id in self.chats:
            raise ValueError(f"chat {chat.id} already exists")
        self.chats[chat.id] = chat
        return chat

    def private_chat(self, user: User) -> Chat:
        chat = self.chats.get(user.id)
        if chat is None:
            chat = self.add_chat(Chat(user.id, "private"))
            chat.members[user.id] = Member("member")
        return chat

    def new_message(self, chat: Chat, from_id: int | None, **fields: Any) -> Message:
        msg = Message(chat.next_message_id, chat.id, from_id, self.now(), **fields)
        chat.messages[msg.message_id] = msg
        chat.next_message_id += 1  # one sequence per chat: the user's messages take ids too
        return msg

    def emit(self, kind: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Queue an update of ``kind`` unless allowed_updates filters it out."""
        allowed = set(self.allowed_updates)
        if (allowed and kind not in allowed) or (not allowed and kind in NOT_DEFAULT_UPDATES):
            self.dropped_updates += 1
            return None
        update = {"update_id": self.next_update_id, kind: payload}
        self.next_update_id += 1
        self.updates.append(update)
        return update

    def confirm(self, offset: int) -> None:
        """Forget updates below ``offset`` (negative: keep only the last ``-offset``)."""
        if offset < 0:
            self.updates = self.updates[offset:]
        else:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]

    # -- JSON shapes -------------------------------------------------------------------------
    def chat_json(self, chat: Chat) -> dict[str, Any]:
        out: dict[str, Any] = {"id": chat.id, "type": chat.type}
        if chat.type == "private":
            user = self.users[chat.id]
            out["first_name"] = user.first_name
            if user.last_name:
                out["last_name"] = user.last_name
            if user.username:
                out["username"] = user.username
            return out
        out["title"] = chat.title or ""
        if chat.username:
            out["username"] = chat.username
        return out

    def chat_full_json(self, chat: Chat) -> dict[str, Any]:
        return {
            **self.chat_json(chat),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def message_json(self, msg: Message, *, with_reply: bool = True) -> dict[str, Any]:
        chat = self.chats[msg.chat_id]
        out: dict[str, Any] = {"message_id": msg.message_id, "date": msg.date}
        if msg.from_id is None:
            out["sender_chat"] = self.chat_json(chat)
        else:
            out["from"] = self.users[msg.from_id].json()
        out["chat"] = self.chat_json(chat)
        if msg.edit_date is not None:
            out["edit_date"] = msg.edit_date
        if with_reply and msg.reply_to is not None and msg.reply_to in chat.messages:
            out["reply_to_message"] = self.message_json(
                chat.messages[msg.reply_to], with_reply=False
            )
        if msg.text is not None:
            out["text"] = msg.text
            if msg.entities:
                out["entities"] = msg.entities
        if msg.photo is not None:
            out["photo"] = msg.photo
        if msg.caption is not None:
            out["caption"] = msg.caption
            if msg.caption_entities:
                out["caption_entities"] = msg.caption_entities
        if msg.reply_markup is not None:
            out["reply_markup"] = msg.reply_markup
        out.update(msg.service)
        return out

    def member_json(self, chat: Chat, user_id: int) -> dict[str, Any]:
        member = self.status(chat, user_id)
        out: dict[str, Any] = {"status": member.status, "user": self.user(user_id).json()}
        if member.status == "creator":
            out["is_anonymous"] = False
        elif member.status == "administrator":
            out.update({"can_be_edited": False, "is_anonymous": False})
            out.update(dict.fromkeys(ADMIN_RIGHTS, True))
            if chat.type == "channel":
                out.update({"can_post_messages": True, "can_edit_messages": True})
            else:
                out["can_pin_messages"] = True
        elif member.status == "kicked":
            out["until_date"] = member.until_date
        elif member.status == "restricted":  # muted: a member who may not post
            out.update({"is_member": True, "until_date": member.until_date})
            out.update(dict.fromkeys(RESTRICTED_RIGHTS, False))
        return out

    def link_json(self, link: InviteLink) -> dict[str, Any]:
        out: dict[str, Any] = {
            "invite_link": link.invite_link,
            "creator": self.users[link.creator_id].json(),
            "creates_join_request": link.creates_join_request,
            "is_primary": link.is_primary,
            "is_revoked": link.is_revoked,
        }
        for key in ("name", "expire_date", "member_limit"):
            if getattr(link, key) is not None:
                out[key] = getattr(link, key)
        if link.creates_join_request:
            out["pending_join_request_count"] = len(link.pending)
        return out


def _as_int(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None
