"""The fake Telegram's control API: the people on the other side of the bot, and what happened.

Thread-safe calls a test or the demo makes in-process: users and chats (:meth:`add_user`,
:meth:`add_chat`, :meth:`add_member`), what users do (:meth:`user_sends`, :meth:`user_presses`,
:meth:`user_joins`, :meth:`user_leaves`, :meth:`block_bot`), what Telegram does
(:meth:`migrate_group`), and what the bot did (:meth:`messages`, :meth:`member_status`,
:meth:`requests`, :meth:`callback_answer`, :meth:`pending_updates`, :meth:`flood_stats`,
:meth:`webhook_deliveries`). Every change that Telegram would announce queues the same update
(message, callback_query, chat_member, chat_join_request, my_chat_member) and wakes long polls
and the webhook.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from signals.local import telegram_members
from signals.local.telegram_limits import FloodControl, FloodStats
from signals.local.telegram_state import MEMBER_STATUSES, Chat, Member, Message, State, User
from signals.local.telegram_updates import Updates, WebhookDelivery
from signals.local.telegram_wire import command_entities


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the server answered (file bytes replaced by their size)."""

    t: float
    method: str
    params: dict[str, Any]
    status: int  # 0: the connection was dropped
    description: str | None


class TelegramControl:
    """The control API; :class:`~signals.local.telegram_server.TelegramBotApiServer` is one."""

    _lock: threading.RLock
    state: State
    flood: FloodControl
    updates: Updates
    _log: deque[RequestRecord]

    # -- control API: the world ---------------------------------------------------------------
    def add_user(
        self,
        user_id: int,
        first_name: str,
        username: str | None = None,
        *,
        last_name: str | None = None,
        started: bool = False,
    ) -> None:
        """A Telegram user; ``started``: has already opened a private chat with the bot.

        The bot cannot write to a user who never started it (403 ``bot can't initiate
        conversation with a user``); :meth:`user_sends` without ``chat_id`` starts the chat.
        """
        with self._lock:
            if user_id in self.state.users:
                raise ValueError(f"user {user_id} already exists")
            user = User(user_id, first_name, username, last_name)
            self.state.users[user_id] = user
            if started:
                user.started = True
                self.state.private_chat(user)

    def add_chat(
        self,
        chat_id: int,
        type: str,  # noqa: A002  (the Bot API's name)
        title: str,
        bot_is_admin: bool = True,
        *,
        username: str | None = None,
        creator_id: int | None = None,
    ) -> None:
        """A group, supergroup or channel with the bot in it (as admin or plain member)."""
        if type == "private":
            raise ValueError("private chats exist per user: use add_user(..., started=True)")
        if (type in ("supergroup", "channel")) != str(chat_id).startswith("-100") or chat_id >= 0:
            raise ValueError(
                f"chat id {chat_id} does not fit a {type}: groups are negative, supergroups "
                "and channels are -100..."
            )
        with self._lock:
            chat = self.state.add_chat(Chat(chat_id, type, title, username))
            chat.members[self.state.bot.id] = Member("administrator" if bot_is_admin else "member")
            if creator_id is not None:
                self.state.user(creator_id)
                chat.members[creator_id] = Member("creator")

    def add_member(self, chat_id: int, user_id: int, status: str = "member") -> None:
        """Put a user into a chat with ``status`` directly (no update is emitted)."""
        if status not in MEMBER_STATUSES:
            raise ValueError(f"status {status!r} is not one of {MEMBER_STATUSES}")
        with self._lock:
            chat = self._chat(chat_id)
            self._user(user_id)
            chat.members[user_id] = Member(status)

    def user_sends(
        self,
        user_id: int,
        text: str,
        chat_id: int | None = None,
        *,
        reply_to: int | None = None,
    ) -> dict[str, Any]:
        """The user writes ``text`` (in their private chat unless ``chat_id``); returns the Update.

        ``/commands`` become ``bot_command`` entities; ``reply_to`` is a message id in the chat.
        Writing in the private chat starts it and lifts a block, as pressing Start/Restart does.
        In groups a bot in privacy mode (not an admin) gets only commands meant for it and
        replies to its own messages. Returns ``{}`` when the bot gets no update.
        """
        with self._lock:
            user = self._user(user_id)
            if chat_id is None or chat_id == user_id:
                chat = self.state.private_chat(user)
                if user.blocked or not user.started:
                    was_blocked = user.blocked
                    user.started, user.blocked = True, False
                    if was_blocked:
                        self._my_chat_member(chat, user, "kicked", "member")
            else:
                chat = self._chat(chat_id)
                if chat.type == "channel":
                    raise ValueError("channel posts come from the channel: use the bot to post")
                if self.state.status(chat, user_id).status in ("left", "kicked"):
                    raise ValueError(f"user {user_id} is not a member of chat {chat_id}")
            if reply_to is not None and reply_to not in chat.messages:
                raise ValueError(f"chat {chat.id} has no message {reply_to} to reply to")
            entities = command_entities(text)
            msg = self.state.new_message(
                chat, user_id, text=text, entities=entities, reply_to=reply_to
            )
            update = (
                self.state.emit("message", self.state.message_json(msg))
                if (self._bot_sees(chat, msg))
                else None
            )
        self.updates.notify()
        return update or {}

    def _bot_sees(self, chat: Chat, msg: Message) -> bool:
        """Privacy mode: in groups a non-admin bot sees commands for it and replies to it."""
        if chat.type == "private" or self.state.bot_is_admin(chat):
            return True
        if msg.reply_to is not None and chat.messages[msg.reply_to].from_id == self.state.bot.id:
            return True
        if not msg.text or not msg.entities or msg.entities[0]["offset"] != 0:
            return False
        command = msg.text[: msg.entities[0]["length"]]
        addressee = command.partition("@")[2]
        return addressee in ("", self.state.bot.username)

    def user_presses(self, user_id: int, chat_id: int, message_id: int, callback_data: str) -> str:
        """The user presses an inline button of a bot message; returns the callback query id."""
        with self._lock:
            user = self._user(user_id)
            chat = self._chat(chat_id)
            msg = chat.messages.get(message_id)
            if msg is None:
                raise ValueError(f"chat {chat_id} has no message {message_id}")
            query_id = f"{self.state.bot.id}{len(self.state.callbacks) + 1:09d}"
            self.state.callbacks[query_id] = None
            message = (
                {"chat": self.state.chat_json(chat), "message_id": message_id, "date": 0}
                if msg.deleted
                else self.state.message_json(msg)
            )
            self.state.emit(
                "callback_query",
                {
                    "id": query_id,
                    "from": user.json(),
                    "message": message,
                    "chat_instance": str(abs(chat.id) * 7919 % 10**19),
                    "data": callback_data,
                },
            )
        self.updates.notify()
        return query_id

    def user_joins(self, user_id: int, invite_link: str) -> str:
        """The user opens ``invite_link``; returns what happened.

        ``"joined"``, ``"requested"`` (an approval link: a chat_join_request update is queued),
        ``"already_member"``, ``"already_requested"``, or a refusal: ``"unknown_link"``,
        ``"revoked"``, ``"expired"``, ``"limit_reached"``, ``"banned"``.
        """
        with self._lock:
            self._user(user_id)
            outcome = telegram_members.join(self.state, user_id, invite_link)
        self.updates.notify()
        return outcome

    def user_leaves(self, user_id: int, chat_id: int) -> None:
        """The user leaves a group, supergroup or channel."""
        with self._lock:
            self._user(user_id)
            telegram_members.leave(self.state, self._chat(chat_id), user_id)
        self.updates.notify()

    def block_bot(self, user_id: int) -> None:
        """The user blocks the bot: sends to them now fail with 403 until they write again."""
        with self._lock:
            user = self._user(user_id)
            user.blocked = True
            chat = self.state.chats.get(user_id)
            if chat is not None:
                self._my_chat_member(chat, user, "member", "kicked")
        self.updates.notify()

    def migrate_group(self, chat_id: int) -> int:
        """Upgrade a group to a supergroup; returns the new chat id (the old one answers 400)."""
        with self._lock:
            old = self._chat(chat_id)
            if old.type != "group":
                raise ValueError(f"chat {chat_id} is a {old.type}, only groups migrate")
            new_id = self.state.next_migrated_id
            self.state.next_migrated_id -= 1
            new = self.state.add_chat(
                Chat(new_id, "supergroup", old.title, members=copy.deepcopy(old.members))
            )
            # invite links and pending join requests carry over to the supergroup
            new.invite_links, old.invite_links = old.invite_links, {}
            new.join_requests, old.join_requests = old.join_requests, {}
            for link in new.invite_links.values():
                link.chat_id = new_id
            old_msg = self.state.new_message(
                old, self.state.bot.id, service={"migrate_to_chat_id": new_id}
            )
            new_msg = self.state.new_message(new, None, service={"migrate_from_chat_id": old.id})
            new_msg.from_id = self.state.bot.id
            self.state.emit("message", self.state.message_json(old_msg))
            self.state.emit("message", self.state.message_json(new_msg))
            old.migrated_to = new_id
        self.updates.notify()
        return new_id

    # -- control API: what happened -----------------------------------------------------------
    def messages(self, chat_id: int, *, include_deleted: bool = False) -> list[Message]:
        """The bot's messages in ``chat_id`` (copies), oldest first."""
        with self._lock:
            chat = self.state.chats.get(chat_id)
            if chat is None:
                return []
            return [
                copy.deepcopy(m)
                for m in chat.messages.values()
                if m.from_id in (self.state.bot.id, None)
                and not m.service
                and (include_deleted or not m.deleted)
            ]

    def all_messages(self, chat_id: int) -> list[Message]:
        """Every message in ``chat_id`` (the users' too), oldest first."""
        with self._lock:
            chat = self.state.chats.get(chat_id)
            return [copy.deepcopy(m) for m in chat.messages.values()] if chat else []

    def member_status(self, chat_id: int, user_id: int) -> str:
        """creator / administrator / member / left / kicked."""
        with self._lock:
            return self.state.status(self._chat(chat_id), user_id).status

    def requests(self, method: str | None = None) -> list[RequestRecord]:
        """The request log, optionally for one method (case-insensitive)."""
        with self._lock:
            return [r for r in self._log if method is None or r.method == method.lower()]

    def callback_answer(self, query_id: str) -> dict[str, Any] | None:
        """How the bot answered a callback query (None: not answered yet)."""
        with self._lock:
            if query_id not in self.state.callbacks:
                raise ValueError(f"no callback query {query_id!r}: user_presses() returns the ids")
            return self.state.callbacks[query_id]

    def pending_updates(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.state.updates)

    def flood_stats(self) -> FloodStats:
        """Accepted sends and 429s per lane, with the lane limits in force."""
        with self._lock:
            stats = self.flood.stats
            return FloodStats(
                dict(stats.limits),
                list(stats.sends),
                stats.rejected.copy(),
                stats.rejected_by_lane.copy(),
            )

    def reset_flood(self) -> None:
        """Forget earlier sends: empty flood windows and statistics."""
        with self._lock:
            self.flood.reset()

    def webhook_deliveries(self) -> list[WebhookDelivery]:
        with self._lock:
            return list(self.updates.deliveries)

    # -- helpers -----------------------------------------------------------------------------
    def _user(self, user_id: int) -> User:
        user = self.state.users.get(user_id)
        if user is None:
            raise ValueError(f"no user {user_id}: add_user() first")
        return user

    def _chat(self, chat_id: int) -> Chat:
        chat = self.state.chats.get(chat_id)
        if chat is None:
            raise ValueError(f"no chat {chat_id}: add_chat() first")
        return chat

    def _my_chat_member(self, chat: Chat, user: User, old: str, new: str) -> None:
        bot = self.state.bot.json()
        self.state.emit(
            "my_chat_member",
            {
                "chat": self.state.chat_json(chat),
                "from": user.json(),
                "date": self.state.now(),
                "old_chat_member": {"status": old, "user": bot, **_until(old)},
                "new_chat_member": {"status": new, "user": bot, **_until(new)},
            },
        )


def _until(status: str) -> dict[str, Any]:
    return {"until_date": 0} if status == "kicked" else {}
