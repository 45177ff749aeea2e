"""A local Telegram Bot API server: the real python-telegram-bot talks to it over HTTP on 127.0.0.1.

There is no offline Bot API server (tdlib's ``telegram-bot-api`` still talks to Telegram), so the
demo and the tests run this one. It speaks the documented wire protocol: ``POST`` (or ``GET``)
``/bot<token>/<method>`` with JSON, url-encoded or multipart bodies, answers
``{"ok": true, "result": ...}`` with the Bot API's result shapes, and fails with Telegram's
own error bodies: 401 for a wrong token, 404 for an unknown method, 400 ``Bad Request: ...``,
403 ``Forbidden: bot was blocked by the user``, 400 with ``parameters.migrate_to_chat_id`` for a
group that became a supergroup, 409 for polling while a webhook is set, and 429 with
``parameters.retry_after`` when a flood lane (:mod:`signals.local.telegram_limits`) is full.

Updates reach the bot by long polling (``getUpdates`` with ``offset``/``limit``/``timeout``/
``allowed_updates``) or by webhook: with one set, the server POSTs each update as JSON to the URL
with ``X-Telegram-Bot-Api-Secret-Token`` and retries non-2xx answers with backoff, reporting the
last error through ``getWebhookInfo``.

The other side of every conversation is the in-process control API (thread-safe): users who send
messages and commands, press inline buttons, join through invite links, block the bot; groups that
migrate; faults queued per method (``"429:5"``, ``"500"``, ``"disconnect"`` ...)::

    with TelegramBotApiServer("123456:SECRET", limits_scale=10.0) as tg:
        tg.add_user(42, "Ada", started=True)
        bot = telegram.Bot("123456:SECRET", base_url=tg.base_url)
        ...
        assert tg.messages(42)[0].text == "hello"
"""

from __future__ import annotations

import asyncio
import copy
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from signals.local import telegram_members, telegram_methods  # noqa: F401  (register methods)
from signals.local.telegram_limits import FloodControl, FloodStats
from signals.local.telegram_methods import METHODS, call
from signals.local.telegram_state import Chat, Member, Message, State, User
from signals.local.telegram_updates import Updates, WebhookDelivery
from signals.local.telegram_wire import ApiError, Params, command_entities, parse_body

FAULTS = ("500", "502", "disconnect", "disconnect_after", "ok")
HTML_502 = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n</body>\r\n</html>"


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the server answered (file bytes replaced by their size)."""

    t: float
    method: str
    params: dict[str, Any]
    status: int
    description: str | None


class _Dropped(Response):
    """Start a 200 answer, send part of it and stop: the client sees the connection drop."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"ok":', "more_body": True})


class TelegramBotApiServer:
    """The fake Bot API for one bot token; start with ``with`` or ``start()``/``stop()``."""

    def __init__(
        self,
        token: str,
        *,
        enforce_limits: bool = True,
        limits_scale: float = 1.0,
        bot_username: str | None = None,
        webhook_backoff_s: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        bot_id, sep, secret = token.partition(":")
        if not (bot_id.isdigit() and sep and secret):
            raise ValueError(f"token must look like '<bot id>:<secret>', got {len(token)} chars")
        self.token = token
        self._lock = threading.RLock()
        bot = User(int(bot_id), "Signals Bot", bot_username or f"signals_{bot_id}_bot", is_bot=True)
        self.state = State(bot)
        self.flood = FloodControl(enforce=enforce_limits, scale=limits_scale)
        self.updates = Updates(self.state, self._lock, self._run_method, webhook_backoff_s)
        self._faults: dict[str, deque[str]] = {}
        self._log: list[RequestRecord] = []
        self._callbacks: dict[str, dict[str, Any] | None] = {}  # query id -> answer
        self._next_query = 1
        self._port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
            ]
        )

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """What python-telegram-bot's ``base_url`` wants (it appends ``{token}/{method}``)."""
        return f"http://127.0.0.1:{self._port}/bot"

    @property
    def api_url(self) -> str:
        """For ``TELEGRAM_API_URL``: the same as :attr:`base_url` (the token is appended)."""
        return self.base_url

    @property
    def base_file_url(self) -> str:
        """PTB's ``base_file_url`` (``File.download_*`` appends ``{token}/{file_path}``)."""
        return f"http://127.0.0.1:{self._port}/file/bot"

    @property
    def root_url(self) -> str:
        """The server root (``/bot<token>/<method>`` and ``/file/bot<token>/<path>`` below)."""
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app, lifespan="off", log_config=None, log_level=None, access_log=False
        )
        self._server = server = uvicorn.Server(config)
        self._loop = loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(server.serve(sockets=[sock]))
            loop.run_until_complete(self.updates.shutdown())
            loop.close()

        self._thread = threading.Thread(target=serve, name="telegram-fake", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Telegram server did not start within 10 s")
            time.sleep(0.01)
        self.updates.bind(loop)

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self.updates.close()  # long polls answer [] at once
        self._server.should_exit = True
        self._server.force_exit = True  # long polls in flight must not hold the shutdown
        self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP ------------------------------------------------------------------------------------
    async def _endpoint(self, request: Request) -> Response:
        name = request.path_params["method"].lower()
        try:
            if request.path_params["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            params = parse_body(
                request.headers.get("content-type", ""),
                await request.body(),
                dict(request.query_params),
            )
        except ApiError as exc:
            self._record(name, {}, exc.code, exc.description)
            return JSONResponse(exc.body(), status_code=exc.code)
        fault = self._next_fault(name)
        if fault is not None and fault != "disconnect_after":
            return await self._fault(name, params, fault)
        try:
            if name == "getupdates":
                result = await self.updates.get_updates(params)
            else:
                result = self._run_method(name, params)
        except ApiError as exc:
            self._record(name, params.loggable(), exc.code, exc.description)
            return JSONResponse(exc.body(), status_code=exc.code)
        self._record(name, params.loggable(), 200, None)
        if fault == "disconnect_after":  # done, but the client never hears so
            return _Dropped()
        return JSONResponse({"ok": True, "result": result})

    async def _download(self, request: Request) -> Response:
        """A file by its ``file_path`` from getFile, as Telegram's file server serves it."""
        if request.path_params["token"] != self.token:
            return JSONResponse(ApiError(401, "Unauthorized").body(), status_code=401)
        with self._lock:
            path = request.path_params["path"]
            found = next((f for f in self.state.files.values() if f.file_path == path), None)
        if found is None:
            return JSONResponse(ApiError(404, "Not Found").body(), status_code=404)
        return Response(found.data, media_type="application/octet-stream")

    def _run_method(self, name: str, params: Params) -> Any:
        try:
            with self._lock:
                if name in self.updates.METHODS:
                    return self.updates.METHODS[name](params)
                if name == "answercallbackquery":
                    return self._answer_callback(params)
                return call(self.state, self.flood, name, params)
        finally:
            self.updates.notify()  # a method may have queued updates (chat_member ...)

    async def _fault(self, name: str, params: Params, fault: str) -> Response:
        if fault == "disconnect":
            self._record(name, params.loggable(), 0, "disconnect")
            return _Dropped()
        if fault == "502":
            self._record(name, params.loggable(), 502, "Bad Gateway")
            return Response(HTML_502, status_code=502, media_type="text/html")
        if fault.startswith("429:"):
            retry_after = int(fault.split(":", 1)[1])
            exc = ApiError(
                429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
            )
        elif fault.startswith("sleep:"):
            await asyncio.sleep(float(fault.split(":", 1)[1]))
            return await self._endpoint_after_sleep(name, params)
        else:
            code = int(fault.split(":", 1)[0])
            exc = ApiError(code, fault.split(":", 1)[1] if ":" in fault else _DEFAULT_TEXT[code])
        self._record(name, params.loggable(), exc.code, exc.description)
        return JSONResponse(exc.body(), status_code=exc.code)

    async def _endpoint_after_sleep(self, name: str, params: Params) -> Response:
        try:
            result = self._run_method(name, params)
        except ApiError as exc:
            self._record(name, params.loggable(), exc.code, exc.description)
            return JSONResponse(exc.body(), status_code=exc.code)
        self._record(name, params.loggable(), 200, None)
        return JSONResponse({"ok": True, "result": result})

    def _record(self, name: str, params: dict[str, Any], status: int, text: str | None) -> None:
        with self._lock:
            self._log.append(RequestRecord(time.time(), name, params, status, text))

    def _next_fault(self, name: str) -> str | None:
        with self._lock:
            queue = self._faults.get(name)
            fault = queue.popleft() if queue else None
        return None if fault == "ok" else fault

    # -- callback queries ---------------------------------------------------------------------
    def _answer_callback(self, params: Params) -> bool:
        query_id = params.get_str("callback_query_id") or ""
        if query_id not in self._callbacks or self._callbacks[query_id] is not None:
            raise ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        text = params.get_str("text")
        if text is not None and len(text) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self._callbacks[query_id] = {
            "text": text,
            "show_alert": params.get_bool("show_alert"),
            "url": params.get_str("url"),
        }
        return True

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
        with self._lock:
            chat = self._chat(chat_id)
            self.state.user(user_id)
            chat.members[user_id] = Member(status)

    def user_sends(self, user_id: int, text: str, chat_id: int | None = None) -> dict[str, Any]:
        """The user writes ``text`` (in their private chat unless ``chat_id``); returns the Update.

        ``/commands`` become ``bot_command`` entities. Writing in the private chat starts it and
        lifts a block, as the user pressing Start/Restart does. In groups the bot (privacy mode
        on, not an admin) receives only commands. Returns ``{}`` when no update was delivered.
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
                if self.state.status(chat, user_id).status in ("left", "kicked"):
                    raise ValueError(f"user {user_id} is not a member of chat {chat_id}")
            entities = command_entities(text)
            msg = self.state.new_message(chat, user_id, text=text, entities=entities)
            sees = (
                chat.type == "private"
                or self.state.bot_is_admin(chat)
                or any(e["offset"] == 0 for e in entities)
            )
            update = self.state.emit("message", self.state.message_json(msg)) if sees else None
        self.updates.notify()
        return update or {}

    def user_presses(self, user_id: int, chat_id: int, message_id: int, callback_data: str) -> str:
        """The user presses an inline button of a bot message; returns the callback query id."""
        with self._lock:
            user = self._user(user_id)
            chat = self._chat(chat_id)
            msg = chat.messages.get(message_id)
            if msg is None:
                raise ValueError(f"chat {chat_id} has no message {message_id}")
            query_id = f"{self.state.bot.id}{self._next_query:09d}"
            self._next_query += 1
            self._callbacks[query_id] = None
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

    def queue_faults(self, method: str, faults: list[str]) -> None:
        """Apply ``faults`` to the next calls of ``method``, one per call, in order.

        ``"429:N"`` (Telegram's 429 with retry_after N), ``"500"``, ``"502"`` (nginx HTML),
        ``"400:<description>"`` / ``"403:<description>"`` (any status with a description),
        ``"disconnect"`` (dropped before acting), ``"disconnect_after"`` (acted, then dropped:
        the ambiguous send), ``"sleep:S"`` (answer after S seconds), ``"ok"`` (no fault).
        """
        for fault in faults:
            head = fault.split(":", 1)[0]
            if fault not in FAULTS and not (head.isdigit() or head == "sleep"):
                raise ValueError(f"unknown fault {fault!r}; use one of {FAULTS}, 'NNN[:text]'")
        with self._lock:
            self._faults.setdefault(method.lower(), deque()).extend(faults)

    # -- control API: what happened -----------------------------------------------------------
    def messages(self, chat_id: int, *, include_deleted: bool = False) -> list[Message]:
        """The bot's messages in ``chat_id`` (copies), oldest first."""
        with self._lock:
            chat = self.state.chats.get(chat_id)
            if chat is None:
                return []
            return [
                replace(m, edits=list(m.edits))
                for m in chat.messages.values()
                if m.from_id in (self.state.bot.id, None)
                and not m.service
                and (include_deleted or not m.deleted)
            ]

    def all_messages(self, chat_id: int) -> list[Message]:
        """Every message in ``chat_id`` (the users' too), oldest first."""
        with self._lock:
            chat = self.state.chats.get(chat_id)
            return [replace(m) for m in chat.messages.values()] if chat else []

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
            return self._callbacks[query_id]

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


_DEFAULT_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

assert METHODS  # the method modules registered their handlers on import
