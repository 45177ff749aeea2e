"""A local Discord REST API: channels, DMs, roles, interaction webhooks, limits, faults.

The demo and the tests point :class:`signals.discord.rest.DiscordRest` at :attr:`api_url` (which
stands for ``https://discord.com/api/v10``) and drive interactions at the bot's endpoint with
:class:`signals.local.discord_interactions.InteractionSender`. What a real client can tell apart is
modelled on Discord's documentation (discord-api-docs, see /work/shared/STREAMS_BOTS_NOTES.md §5):

- ``Authorization: Bot <token>`` on every route but the interaction webhooks, else 401
  ``{"message": "401: Unauthorized", "code": 0}``.
- ``X-RateLimit-*`` headers on every response, per-route buckets and the 50/s global cap
  (:mod:`signals.local.discord_ratelimit`); a 429 carries ``Retry-After``, ``X-RateLimit-Scope``,
  ``X-RateLimit-Global``, ``Via: 1.1 google`` and ``{"message": "You are being rate limited.",
  "retry_after": <float>, "global": false}``; 401/403/429 are counted as invalid requests.
- Messages: content <= 2000 chars, embeds, components, attachments (multipart ``files[n]`` plus
  ``payload_json``); ``nonce`` (<= 25 chars) with ``enforce_nonce: true`` returns the message
  already created with that nonce in the last few minutes and creates none. Listings omit the
  nonce (Discord returns it on the create response and through the Gateway) [inference from
  the API docs]; ``nonce_window_s`` (300 s) stands for Discord's unspecified "few minutes".
- Roles: ``PUT``/``DELETE`` answer 204 whether or not the member had the role; the
  ``X-Audit-Log-Reason`` is recorded; :meth:`deny_manage_roles` gives 403 50013.
- Interaction tokens live 15 minutes; ``PATCH .../messages/@original`` edits the answer.

Tests steer it through the control API (:meth:`add_guild`, :meth:`queue_faults`, ...) from their
own thread; every handler runs under one lock, so the state is consistent for both sides.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from signals.local.discord_ratelimit import RateLimiter, retry_after_header
from signals.local.uvicorn_thread import UvicornThread

DISCORD_EPOCH_MS = 1_420_070_400_000
MAX_CONTENT = 2000
MAX_NONCE = 25
API_PREFIX = "/api/v10"
EPHEMERAL = 64


class ApiError(Exception):
    """A Discord JSON error answer: ``{"message": ..., "code": ...}`` with an HTTP status."""

    def __init__(self, status: int, message: str, code: int, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"message": message, "code": code, **extra}


UNKNOWN_CHANNEL = (404, "Unknown Channel", 10003)
UNKNOWN_GUILD = (404, "Unknown Guild", 10004)
UNKNOWN_MEMBER = (404, "Unknown Member", 10007)
UNKNOWN_ROLE = (404, "Unknown Role", 10011)
UNKNOWN_WEBHOOK = (404, "Unknown Webhook", 10015)
MISSING_ACCESS = (403, "Missing Access", 50001)
MISSING_PERMISSIONS = (403, "Missing Permissions", 50013)
CANNOT_DM = (403, "Cannot send messages to this user", 50007)
INVALID_WEBHOOK_TOKEN = (401, "Invalid Webhook Token", 50027)


@dataclass
class Call:
    """One request as the fake saw it (the token itself is never kept)."""

    method: str
    path: str
    route: str
    status: int
    ts: float
    authorized: bool
    body: Any = None
    reason: str | None = None  # X-Audit-Log-Reason


@dataclass
class Interaction:
    """An interaction the sender delivered, and everything the app did with its token."""

    id: str
    token: str
    channel_id: str
    guild_id: str | None
    issued_at: float
    payload: dict[str, Any]
    status: int | None = None  # the endpoint's HTTP status
    response: dict[str, Any] | None = None  # the endpoint's answer (callback)
    elapsed_s: float | None = None
    late: bool = False  # answered after the 3 s budget (Discord shows "did not respond")
    original: dict[str, Any] | None = None
    edits: list[float] = field(default_factory=list)  # times @original was PATCHed
    followups: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Guild:
    name: str
    roles: dict[str, str] = field(default_factory=dict)  # role id -> name
    members: dict[str, set[str]] = field(default_factory=dict)  # user id -> role ids
    can_manage_roles: bool = True


@dataclass
class _Channel:
    id: str
    type: int  # 0 guild text, 1 DM
    guild_id: str | None = None
    name: str = ""
    recipient_id: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    denied: bool = False


Handler = Callable[["_Ctx"], tuple[int, Any]]


@dataclass
class _Ctx:
    method: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    files: list[tuple[str, str, bytes]]  # (filename, content type, data)


class DiscordApiServer:
    """A stateful Discord REST API on 127.0.0.1; ``start()``/``stop()`` or ``with``."""

    def __init__(
        self,
        bot_token: str,
        application_id: str,
        *,
        enforce_limits: bool = True,
        limits_scale: float = 1.0,
        nonce_window_s: float = 300.0,
        token_ttl_s: float = 900.0,
    ) -> None:
        self._auth = f"Bot {bot_token}"
        self.application_id = application_id
        self.bot_user = {"id": application_id, "username": "signals", "bot": True}
        self.limiter = RateLimiter(enforce=enforce_limits, scale=limits_scale)
        self.nonce_window_s = nonce_window_s
        self.token_ttl_s = token_ttl_s
        self.requests: list[Call] = []
        self.invalid_requests = 0  # 401 / 403 / 429 answers (Discord bans IPs above 10k / 10 min)
        self.audit_log: list[dict[str, Any]] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}  # guild id -> registered commands
        self.attachments: dict[str, bytes] = {}
        self.interactions: dict[str, Interaction] = {}  # by token
        self._guilds: dict[str, _Guild] = {}
        self._channels: dict[str, _Channel] = {}
        self._dms: dict[str, str] = {}  # recipient id -> DM channel id
        self._blocked_dms: set[str] = set()
        # nonce -> (channel id, message id, created at): Discord matches "the same author with
        # the same nonce", whatever the channel (every message here is the bot's)
        self._nonces: dict[str, tuple[str, str, float]] = {}
        self._faults: dict[str, deque[str]] = {}
        self._last_id = 0
        self._lock = threading.RLock()
        self._routes = [(m, _pattern(t), f"{m} {t}", h) for m, t, h in self._table()]
        app = Starlette(routes=[Route(API_PREFIX + "/{path:path}", self._endpoint, methods=_VERBS)])
        self._server = UvicornThread(app, name="discord-fake")

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> DiscordApiServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> DiscordApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """Stands for ``https://discord.com/api/v10``."""
        return f"{self._server.url}{API_PREFIX}"

    # -- control API (the test's side) ------------------------------------------------------
    def snowflake(self) -> str:
        """A new id, time-ordered like Discord's (ms since 2015 << 22, plus a counter)."""
        with self._lock:
            now = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
            self._last_id = max(now, self._last_id + 1)
            return str(self._last_id)

    def add_guild(self, guild_id: str | None = None, name: str = "signals") -> str:
        gid = guild_id or self.snowflake()
        with self._lock:
            self._guilds.setdefault(gid, _Guild(name))
        return gid

    def add_role(self, guild_id: str, role_id: str | None = None, name: str = "subscriber") -> str:
        rid = role_id or self.snowflake()
        with self._lock:
            self._guilds[guild_id].roles[rid] = name
        return rid

    def add_member(self, guild_id: str, user_id: str, roles: tuple[str, ...] = ()) -> None:
        with self._lock:
            self._guilds[guild_id].members.setdefault(user_id, set()).update(roles)

    def add_channel(
        self, channel_id: str | None = None, guild_id: str | None = None, name: str = "signals"
    ) -> str:
        cid = channel_id or self.snowflake()
        with self._lock:
            self._channels.setdefault(cid, _Channel(cid, 0, guild_id, name))
        return cid

    def messages(self, channel_id: str) -> list[dict[str, Any]]:
        """The channel's messages, oldest first (copies)."""
        with self._lock:
            return [dict(m) for m in self._channels[channel_id].messages]

    def dm_channel(self, user_id: str) -> str | None:
        with self._lock:
            return self._dms.get(user_id)

    def member_roles(self, guild_id: str, user_id: str) -> set[str]:
        with self._lock:
            return set(self._guilds[guild_id].members.get(user_id, set()))

    def deny_manage_roles(self, guild_id: str, denied: bool = True) -> None:
        """The bot loses (or regains) MANAGE_ROLES: role changes answer 403 50013."""
        with self._lock:
            self._guilds[guild_id].can_manage_roles = not denied

    def deny_channel(self, channel_id: str, denied: bool = True) -> None:
        """The bot can no longer post in the channel: 403 50001 Missing Access."""
        with self._lock:
            self._channels[channel_id].denied = denied

    def block_dms(self, user_id: str) -> None:
        """The user closed their DMs: sends to their DM channel answer 403 50007."""
        with self._lock:
            self._blocked_dms.add(user_id)

    def queue_faults(self, route: str, faults: list[str]) -> None:
        """Answer the next requests on ``route`` (``"POST /channels/{channel_id}/messages"``)
        with ``faults`` in order: ``"429"`` / ``"429:2.5"`` (user scope, retry_after in s),
        ``"global429:1"``, an HTTP status (``"500"``, ``"502"``, ``"403"``, ...) or ``"ok"``."""
        known = {name for _, _, name, _ in self._routes}
        if route not in known:
            raise ValueError(f"queue_faults: unknown route {route!r}; one of {sorted(known)}")
        with self._lock:
            self._faults.setdefault(route, deque()).extend(faults)

    def calls(self, route: str) -> list[Call]:
        with self._lock:
            return [c for c in self.requests if c.route == route]

    def register_interaction(self, interaction: Interaction) -> None:
        """Called by the interaction sender when it delivers one (its token becomes valid)."""
        with self._lock:
            self.interactions[interaction.token] = interaction

    def record_callback(
        self, token: str, status: int, response: dict[str, Any] | None, elapsed_s: float, late: bool
    ) -> None:
        """The sender got the endpoint's answer: keep it and derive ``@original`` from it
        (4 and 7 carry the message, 5 shows a "thinking" placeholder until PATCHed)."""
        with self._lock:
            it = self.interactions[token]
            it.status, it.response, it.elapsed_s, it.late = status, response, elapsed_s, late
            if late or status != 200 or not isinstance(response, dict):
                return
            kind, data = response.get("type"), response.get("data") or {}
            if kind in (4, 5):
                body = data if kind == 4 else {"flags": data.get("flags")}  # 5: "thinking…"
                it.original = self._new_message(it.channel_id, body, [], allow_empty=kind == 5)
            elif kind in (6, 7):
                base = dict(it.payload.get("message") or {})
                it.original = {**base, **data} if kind == 7 else base or None

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
        """Poll ``predicate`` (under the lock) until true or ``timeout_s``."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self._lock:
                if predicate():
                    return True
            time.sleep(0.01)
        return False

    # -- HTTP ------------------------------------------------------------------------------
    async def _endpoint(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        raw = await request.body()
        for method, pattern, name, handler in self._routes:
            m = pattern.fullmatch(path)
            if m and method == request.method:
                return self._serve(request, raw, path, name, handler, m.groupdict())
        return JSONResponse({"message": "404: Not Found", "code": 0}, status_code=404)

    def _serve(
        self,
        request: Request,
        raw: bytes,
        path: str,
        name: str,
        handler: Handler,
        params: dict[str, str],
    ) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        authorized = name.split(" ")[1].startswith("/webhooks/") or (
            headers.get("authorization") == self._auth
        )
        extra: dict[str, str]
        with self._lock:
            verdict = self.limiter.check(name, params)
            if not authorized:
                status, body, extra = 401, {"message": "401: Unauthorized", "code": 0}, {}
            elif verdict.limited:
                status, body, extra = _limited(verdict.retry_after, verdict.scope)
            else:
                status, body, extra = self._answer(request, raw, name, handler, params, headers)
            if status in (401, 403, 429):
                self.invalid_requests += 1
            reason = headers.get("x-audit-log-reason")
            self.requests.append(
                Call(
                    request.method,
                    path,
                    name,
                    status,
                    time.time(),
                    authorized,
                    _loggable(raw, headers),
                    unquote(reason) if reason else None,
                )
            )
        out = {**verdict.headers, **extra}
        if status == 204:
            return Response(status_code=204, headers=out)
        return JSONResponse(body, status_code=status, headers=out)

    def _answer(
        self,
        request: Request,
        raw: bytes,
        name: str,
        handler: Handler,
        params: dict[str, str],
        headers: dict[str, str],
    ) -> tuple[int, Any, dict[str, str]]:
        queued = self._faults.get(name)
        fault = queued.popleft() if queued else "ok"
        if fault.startswith(("429", "global429")):
            kind, _, secs = fault.partition(":")
            return _limited(float(secs or 1.0), "global" if kind == "global429" else "user")
        if fault != "ok":
            code = int(fault)
            return code, {"message": f"{code}: fault", "code": 0}, {}
        try:
            body, files = _parse_body(headers.get("content-type", ""), raw)
            ctx = _Ctx(request.method, params, dict(request.query_params), headers, body, files)
            status, answer = handler(ctx)
        except ApiError as e:
            return e.status, e.body, {}
        return status, answer, {}

    # -- routes ------------------------------------------------------------------------------
    def _table(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/channels/{channel_id}/messages", self._create_message),
            ("GET", "/channels/{channel_id}/messages", self._list_messages),
            ("POST", "/users/@me/channels", self._create_dm),
            ("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self._add_role),
            ("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self._remove_role),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
            ("PATCH", "/webhooks/{application_id}/{token}/messages/@original", self._edit_original),
            ("POST", "/webhooks/{application_id}/{token}", self._followup),
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self._commands),
        ]

    def _channel(self, channel_id: str) -> _Channel:
        ch = self._channels.get(channel_id)
        if ch is None:
            raise ApiError(*UNKNOWN_CHANNEL)
        return ch

    def _guild(self, guild_id: str) -> _Guild:
        g = self._guilds.get(guild_id)
        if g is None:
            raise ApiError(*UNKNOWN_GUILD)
        return g

    def _create_message(self, ctx: _Ctx) -> tuple[int, Any]:
        ch = self._channel(ctx.params["channel_id"])
        if ch.denied:
            raise ApiError(*MISSING_ACCESS)
        if ch.recipient_id in self._blocked_dms:
            raise ApiError(*CANNOT_DM)
        body = ctx.json if isinstance(ctx.json, dict) else {}
        nonce = body.get("nonce")
        if nonce is not None and len(str(nonce)) > MAX_NONCE:
            raise _form_error("nonce", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        if nonce is not None and body.get("enforce_nonce") and str(nonce) in self._nonces:
            where, msg_id, at = self._nonces[str(nonce)]
            if time.time() - at < self.nonce_window_s:
                return 200, {**_public(_find(self._channels[where], msg_id)), "nonce": nonce}
        msg = self._new_message(ch.id, body, ctx.files)
        ch.messages.append(msg)
        if nonce is not None:
            self._nonces[str(nonce)] = (ch.id, msg["id"], time.time())
        return 200, {**_public(msg), **({"nonce": nonce} if nonce is not None else {})}

    def _new_message(
        self,
        channel_id: str,
        body: dict[str, Any],
        files: list[tuple[str, str, bytes]],
        *,
        allow_empty: bool = False,
    ) -> dict[str, Any]:
        content = str(body.get("content") or "")
        if len(content) > MAX_CONTENT:
            raise _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        embeds = list(body.get("embeds") or [])
        if len(embeds) > 10:
            raise _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        attachments = []
        for filename, ctype, data in files:
            att_id = self.snowflake()
            self.attachments[att_id] = data
            url = f"{self.api_url}/attachments/{channel_id}/{att_id}/{filename}"
            attachments.append(
                {"id": att_id, "filename": filename, "size": len(data), "content_type": ctype}
                | {"url": url}
            )
        if not (allow_empty or content or embeds or attachments or body.get("components")):
            raise ApiError(400, "Cannot send an empty message", 50006)
        return {
            "id": self.snowflake(),
            "type": 0,
            "channel_id": channel_id,
            "author": dict(self.bot_user),
            "content": content,
            "embeds": embeds,
            "components": list(body.get("components") or []),
            "attachments": attachments,
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "flags": int(body.get("flags") or 0),
            "_nonce": body.get("nonce"),
        }

    def _list_messages(self, ctx: _Ctx) -> tuple[int, Any]:
        ch = self._channel(ctx.params["channel_id"])
        if ch.denied:
            raise ApiError(*MISSING_ACCESS)
        limit = int(ctx.query.get("limit", "50"))
        if not 1 <= limit <= 100:
            raise _form_error("limit", "NUMBER_TYPE_MAX", "int value should be <= 100 and >= 1.")
        msgs = ch.messages
        if "after" in ctx.query:
            after = int(ctx.query["after"])
            page = [m for m in msgs if int(m["id"]) > after][:limit]
        elif "before" in ctx.query:
            before = int(ctx.query["before"])
            page = [m for m in msgs if int(m["id"]) < before][-limit:]
        else:
            page = msgs[-limit:]
        return 200, [_public(m) for m in reversed(page)]  # newest first, as Discord lists

    def _create_dm(self, ctx: _Ctx) -> tuple[int, Any]:
        recipient = str((ctx.json or {}).get("recipient_id") or "")
        if not recipient.isdigit():
            raise _form_error("recipient_id", "NUMBER_TYPE_COERCE", "Value is not snowflake.")
        cid = self._dms.get(recipient)
        if cid is None:
            cid = self.snowflake()
            self._channels[cid] = _Channel(cid, 1, recipient_id=recipient)
            self._dms[recipient] = cid
        user = {"id": recipient, "username": f"user{recipient[-4:]}"}
        return 200, {"id": cid, "type": 1, "recipients": [user], "last_message_id": None}

    def _role_target(self, ctx: _Ctx) -> tuple[_Guild, set[str], str]:
        g = self._guild(ctx.params["guild_id"])
        if ctx.params["role_id"] not in g.roles:
            raise ApiError(*UNKNOWN_ROLE)
        roles = g.members.get(ctx.params["user_id"])
        if roles is None:
            raise ApiError(*UNKNOWN_MEMBER)
        if not g.can_manage_roles:
            raise ApiError(*MISSING_PERMISSIONS)
        return g, roles, ctx.params["role_id"]

    def _add_role(self, ctx: _Ctx) -> tuple[int, Any]:
        _, roles, role = self._role_target(ctx)
        roles.add(role)
        self._audit("MEMBER_ROLE_ADD", ctx)
        return 204, None

    def _remove_role(self, ctx: _Ctx) -> tuple[int, Any]:
        _, roles, role = self._role_target(ctx)
        roles.discard(role)
        self._audit("MEMBER_ROLE_REMOVE", ctx)
        return 204, None

    def _audit(self, action: str, ctx: _Ctx) -> None:
        reason = ctx.headers.get("x-audit-log-reason")
        self.audit_log.append(
            {"action": action, **ctx.params, "reason": reason and unquote(reason)}
        )

    def _get_member(self, ctx: _Ctx) -> tuple[int, Any]:
        g = self._guild(ctx.params["guild_id"])
        uid = ctx.params["user_id"]
        if uid not in g.members:
            raise ApiError(*UNKNOWN_MEMBER)
        user = {"id": uid, "username": f"user{uid[-4:]}"}
        return 200, {"user": user, "roles": sorted(g.members[uid]), "nick": None, "flags": 0}

    def _interaction(self, ctx: _Ctx) -> Interaction:
        it = self.interactions.get(ctx.params["token"])
        if it is None or ctx.params["application_id"] != self.application_id or it.late:
            raise ApiError(*UNKNOWN_WEBHOOK)
        if time.time() - it.issued_at > self.token_ttl_s:
            raise ApiError(*INVALID_WEBHOOK_TOKEN)
        return it

    def _edit_original(self, ctx: _Ctx) -> tuple[int, Any]:
        it = self._interaction(ctx)
        body = ctx.json if isinstance(ctx.json, dict) else {}
        base = it.original or self._new_message(it.channel_id, {}, [], allow_empty=True)
        edited = self._new_message(it.channel_id, {**_public(base), **body}, ctx.files)
        edited["id"] = base["id"]
        edited["edited_timestamp"] = edited.pop("timestamp")
        it.original = edited
        it.edits.append(time.time())
        return 200, _public(edited)

    def _followup(self, ctx: _Ctx) -> tuple[int, Any]:
        it = self._interaction(ctx)
        body = ctx.json if isinstance(ctx.json, dict) else {}
        msg = self._new_message(it.channel_id, body, ctx.files)
        it.followups.append(msg)
        return 200, _public(msg)  # interaction followups always answer with the message

    def _commands(self, ctx: _Ctx) -> tuple[int, Any]:
        if ctx.params["application_id"] != self.application_id:
            raise ApiError(*MISSING_ACCESS)
        self._guild(ctx.params["guild_id"])
        if not isinstance(ctx.json, list):
            raise _form_error("_root", "LIST_TYPE_CONVERT", "Must be an array.")
        old = {c["name"]: c["id"] for c in self.commands.get(ctx.params["guild_id"], [])}
        registered = [
            {
                **c,
                "id": old.get(c["name"]) or self.snowflake(),
                "application_id": self.application_id,
            }
            | {"guild_id": ctx.params["guild_id"], "version": self.snowflake()}
            for c in ctx.json
        ]
        self.commands[ctx.params["guild_id"]] = registered
        return 200, registered


_VERBS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template))


def _limited(retry_after: float, scope: str) -> tuple[int, Any, dict[str, str]]:
    is_global = scope == "global"
    body = {"message": "You are being rate limited.", "retry_after": round(retry_after, 3)}
    headers = {
        "Retry-After": retry_after_header(retry_after),
        "X-RateLimit-Scope": scope,
        "Via": "1.1 google",  # discord.py treats a 429 without it as a Cloudflare ban
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    return 429, {**body, "global": is_global}, headers


def _form_error(field_name: str, code: str, message: str) -> ApiError:
    errors = {field_name: {"_errors": [{"code": code, "message": message}]}}
    return ApiError(400, "Invalid Form Body", 50035, errors=errors)


def _public(msg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in msg.items() if not k.startswith("_")}


def _find(ch: _Channel, msg_id: str) -> dict[str, Any]:
    return next(m for m in ch.messages if m["id"] == msg_id)


def _parse_body(content_type: str, raw: bytes) -> tuple[Any, list[tuple[str, str, bytes]]]:
    """JSON, or multipart ``payload_json`` plus ``files[n]`` parts (the attachments)."""
    if not raw:
        return None, []
    if content_type.startswith("multipart/form-data"):
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        parsed = BytesParser(policy=HTTP).parsebytes(head + raw)
        payload: Any = {}
        files: list[tuple[str, str, bytes]] = []
        for part in parsed.iter_parts():  # type: ignore[attr-defined]
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True)
            data = data if isinstance(data, bytes) else b""
            if name == "payload_json":
                payload = json.loads(data)
            elif str(name).startswith("files["):
                files.append((part.get_filename() or "file", part.get_content_type(), data))
        return payload, files
    try:
        return json.loads(raw), []
    except json.JSONDecodeError as e:
        raise ApiError(400, "400: Bad Request", 50109, detail=f"invalid JSON: {e}") from None


def _loggable(raw: bytes, headers: dict[str, str]) -> Any:
    if headers.get("content-type", "").startswith("application/json") and raw:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return None
    return None
