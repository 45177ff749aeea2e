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

Methods: getMe, getUpdates, setWebhook, deleteWebhook, getWebhookInfo, sendMessage, sendPhoto,
sendChatAction, editMessageText, editMessageCaption, editMessageReplyMarkup, deleteMessage,
answerCallbackQuery, setMyCommands, getMyCommands, deleteMyCommands, getChat, getChatMember,
getChatMemberCount, getChatAdministrators, leaveChat, getFile (and ``/file/bot<token>/<path>``),
createChatInviteLink, editChatInviteLink, revokeChatInviteLink, exportChatInviteLink,
banChatMember, unbanChatMember, approveChatJoinRequest, declineChatJoinRequest. Any other
method answers 404 ``Not Found`` as Telegram does for an unknown one.

Where the fake knowingly differs from Telegram: webhooks may be plain HTTP to a loopback host
(Telegram demands HTTPS) and are delivered one at a time; every PhotoSize of a photo serves the
original bytes; there is no inline mode (``inline_message_id`` edits fail); restricted members
may do nothing; text limits count UTF-16 code units; an invite link's ``member_limit`` counts
every join through it, also of members who left since; the flood lanes are sliding windows
(Telegram does not publish its algorithm, only the rates).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from signals.local import (  # noqa: F401  (the method modules register their handlers)
    telegram_interactions,
    telegram_members,
    telegram_methods,
)
from signals.local.telegram_control import RequestRecord, TelegramControl
from signals.local.telegram_limits import FloodControl
from signals.local.telegram_methods import METHODS, call
from signals.local.telegram_state import State, User
from signals.local.telegram_updates import Updates
from signals.local.telegram_wire import (
    ApiError,
    Params,
    parse_body,
    too_many_requests,
)

MAX_LOG = 100_000  # requests kept for requests() (a long demo must not grow without bound)
TRANSPORT_FAULTS = ("502", "disconnect", "disconnect_after", "ok")
HTML_502 = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n</body>\r\n</html>"


class _Dropped(Response):
    """Start a 200 answer, send part of it and stop: the client sees the connection drop."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"ok":', "more_body": True})


class TelegramBotApiServer(TelegramControl):
    """The fake Bot API for one bot token; start with ``with`` or ``start()``/``stop()``."""

    def __init__(
        self,
        token: str,
        *,
        enforce_limits: bool = True,
        limits_scale: float = 1.0,
        bot_username: str | None = None,
        webhook_backoff_s: tuple[float, float] = (0.05, 2.0),
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        bot_id, sep, secret = token.partition(":")
        if not (bot_id.isdigit() and sep and secret):
            raise ValueError(f"token must look like '<bot id>:<secret>', got {len(token)} chars")
        self.token = token
        self._lock = threading.RLock()
        bot = User(int(bot_id), "Signals Bot", bot_username or f"signals_{bot_id}_bot", is_bot=True)
        self.state = State(bot, clock=clock)  # dates, expiry, temporary bans (not flood lanes)
        self.flood = FloodControl(enforce=enforce_limits, scale=limits_scale)
        self.updates = Updates(self.state, self._lock, self._run_method, webhook_backoff_s)
        self._faults: dict[str, deque[str]] = {}
        self._log: deque[RequestRecord] = deque(maxlen=MAX_LOG)
        self._requested_port = port  # 0: an ephemeral port (see ``port`` once started)
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
        """Serve on 127.0.0.1 in a daemon thread; returns once the port is listening."""
        # uvicorn binds the port itself: handing it a pre-bound socket costs ~40 ms a request
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self._requested_port,
            lifespan="off",
            log_config=None,
            log_level=None,
            access_log=False,
        )
        self._server = server = uvicorn.Server(config)
        self._loop = loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(server.serve())
            loop.run_until_complete(self.updates.shutdown())
            loop.close()

        self._thread = threading.Thread(target=serve, name="telegram-fake", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(
                    f"the fake Telegram server did not start on 127.0.0.1:{self._requested_port} "
                    "within 10 s (is the port taken?)"
                )
            time.sleep(0.01)
        self._port = server.servers[0].sockets[0].getsockname()[1]
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
        if fault is not None and fault.startswith("sleep:"):  # a slow answer, then as usual
            await asyncio.sleep(float(fault.split(":", 1)[1]))
            fault = None
        if fault == "disconnect":
            self._record(name, params.loggable(), 0, "disconnect")
            return _Dropped()
        if fault == "502":
            self._record(name, params.loggable(), 502, "Bad Gateway")
            return Response(HTML_502, status_code=502, media_type="text/html")
        try:
            if fault is not None and fault != "disconnect_after":
                raise fault_error(fault)
            if name == "getupdates":
                result = await self.updates.get_updates(params)
            else:
                result = self._run_method(name, params)
        except ApiError as exc:
            self._record(name, params.loggable(), exc.code, exc.description)
            return JSONResponse(exc.body(), status_code=exc.code)
        self._record(name, params.loggable(), 200, fault)
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
                return call(self.state, self.flood, name, params)
        finally:
            self.updates.notify()  # a method may have queued updates (chat_member ...)

    def _record(self, name: str, params: dict[str, Any], status: int, text: str | None) -> None:
        with self._lock:
            self._log.append(RequestRecord(time.time(), name, params, status, text))

    def _next_fault(self, name: str) -> str | None:
        with self._lock:
            queue = self._faults.get(name)
            fault = queue.popleft() if queue else None
        return None if fault == "ok" else fault

    def queue_faults(self, method: str, faults: list[str]) -> None:
        """Apply ``faults`` to the next calls of ``method``, one per call, in order.

        ``"429:N"`` (Telegram's 429 with retry_after N), ``"500"``, ``"502"`` (nginx HTML),
        ``"NNN:<description>"`` (any status with Telegram's full description, e.g.
        ``"403:Forbidden: user is deactivated"``),
        ``"disconnect"`` (dropped before acting), ``"disconnect_after"`` (acted, then dropped:
        the ambiguous send), ``"sleep:S"`` (answer after S seconds), ``"ok"`` (no fault).
        """
        for fault in faults:
            fault_error(fault)  # raises ValueError for a fault it does not know
        with self._lock:
            self._faults.setdefault(method.lower(), deque()).extend(faults)


_DEFAULT_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


def fault_error(fault: str) -> ApiError:
    """The Bot API error a queued fault answers with (transport faults: a placeholder).

    Raises ValueError for anything but ``"429:N"``, ``"NNN"``, ``"NNN:<description>"``,
    ``"sleep:S"`` and :data:`TRANSPORT_FAULTS`.
    """
    head, _, tail = fault.partition(":")
    if fault in TRANSPORT_FAULTS:
        return ApiError(0, fault)
    if head == "sleep" and tail.replace(".", "", 1).isdigit():
        return ApiError(0, fault)
    if head == "429":
        if tail.isdigit():
            return too_many_requests(int(tail))
    elif head.isdigit() and len(head) == 3 and (tail or int(head) in _DEFAULT_TEXT):
        return ApiError(int(head), tail or _DEFAULT_TEXT[int(head)])
    raise ValueError(
        f"unknown fault {fault!r}: use '429:<seconds>', a status ('500', '403:<description>'), "
        f"'sleep:<seconds>' or one of {TRANSPORT_FAULTS}"
    )


assert METHODS  # the method modules registered their handlers on import
