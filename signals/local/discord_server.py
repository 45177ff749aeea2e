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

The state and what each route answers live in :mod:`signals.local.discord_state`; this module
adds HTTP (starlette under uvicorn in a thread), authorization, limits, faults and the request log.
Tests steer it through the control API (:meth:`add_guild`, :meth:`queue_faults`, ...) from their
own thread; every handler runs under one lock, so the state is consistent for both sides.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from signals.local.discord_ratelimit import RateLimiter, retry_after_header
from signals.local.discord_state import (
    API_PREFIX,
    ApiError,
    Ctx,
    DiscordState,
    Guild,
    Handler,
    Interaction,
    TextChannel,
)
from signals.local.uvicorn_thread import UvicornThread


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


class DiscordApiServer(DiscordState):
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
        super().__init__(application_id, nonce_window_s, token_ttl_s)
        self.bot_token = bot_token  # the one token it accepts (a fake's: not a secret)
        self._auth = f"Bot {bot_token}"
        self.limiter = RateLimiter(enforce=enforce_limits, scale=limits_scale)
        self.requests: list[Call] = []
        self.invalid_requests = 0  # 401 / 403 / 429 answers (Discord bans IPs above 10k / 10 min)
        self._faults: dict[str, deque[str]] = {}
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

    def add_guild(self, guild_id: str | None = None, name: str = "signals") -> str:
        gid = guild_id or self.snowflake()
        with self._lock:
            self._guilds.setdefault(gid, Guild(name))
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
            self._channels.setdefault(cid, TextChannel(cid, 0, guild_id, name))
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
            ctx = Ctx(request.method, params, dict(request.query_params), headers, body, files)
            status, answer = handler(ctx)
        except ApiError as e:
            return e.status, e.body, {}
        return status, answer, {}


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
