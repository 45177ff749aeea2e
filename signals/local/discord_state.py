"""The local Discord fake's state and REST routes: guilds, roles, members, channels, messages,
DM channels, interaction tokens, registered commands; what each route answers, with Discord's
JSON error bodies (``{"message": "Unknown Channel", "code": 10003}``, ``Invalid Form Body``).

:class:`DiscordState` is the behaviour; :class:`signals.local.discord_server.DiscordApiServer`
adds HTTP, authorization, rate limits, faults and the control API on top. Every route handler
runs under the server's lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

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
class Guild:
    name: str
    roles: dict[str, str] = field(default_factory=dict)  # role id -> name
    members: dict[str, set[str]] = field(default_factory=dict)  # user id -> role ids
    can_manage_roles: bool = True


@dataclass
class TextChannel:
    id: str
    type: int  # 0 guild text, 1 DM
    guild_id: str | None = None
    name: str = ""
    recipient_id: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    denied: bool = False


Handler = Callable[["Ctx"], tuple[int, Any]]


@dataclass
class Ctx:
    method: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    files: list[tuple[str, str, bytes]]  # (filename, content type, data)


class DiscordState:
    """The platform's state and the REST routes' behaviour (no HTTP here)."""

    def __init__(self, application_id: str, nonce_window_s: float, token_ttl_s: float) -> None:
        self.application_id = application_id
        self.bot_user = {"id": application_id, "username": "signals", "bot": True}
        self.nonce_window_s = nonce_window_s
        self.token_ttl_s = token_ttl_s
        self.audit_log: list[dict[str, Any]] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}  # guild id -> registered commands
        self.attachments: dict[str, bytes] = {}
        self.interactions: dict[str, Interaction] = {}  # by token
        self._guilds: dict[str, Guild] = {}
        self._channels: dict[str, TextChannel] = {}
        self._dms: dict[str, str] = {}  # recipient id -> DM channel id
        self._blocked_dms: set[str] = set()
        # nonce -> (channel id, message id, created at): Discord matches "the same author with
        # the same nonce", whatever the channel (every message here is the bot's)
        self._nonces: dict[str, tuple[str, str, float]] = {}
        self._last_id = 0
        self._lock = threading.RLock()

    @property
    def api_url(self) -> str:  # attachment URLs point at the server (it overrides this)
        return "http://127.0.0.1/api/v10"

    def snowflake(self) -> str:
        """A new id, time-ordered like Discord's (ms since 2015 << 22, plus a counter)."""
        with self._lock:
            now = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
            self._last_id = max(now, self._last_id + 1)
            return str(self._last_id)

    # -- routes --------------------------------------------------------------------------------
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

    def _channel(self, channel_id: str) -> TextChannel:
        ch = self._channels.get(channel_id)
        if ch is None:
            raise ApiError(*UNKNOWN_CHANNEL)
        return ch

    def _guild(self, guild_id: str) -> Guild:
        g = self._guilds.get(guild_id)
        if g is None:
            raise ApiError(*UNKNOWN_GUILD)
        return g

    def _create_message(self, ctx: Ctx) -> tuple[int, Any]:
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

    def _list_messages(self, ctx: Ctx) -> tuple[int, Any]:
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

    def _create_dm(self, ctx: Ctx) -> tuple[int, Any]:
        recipient = str((ctx.json or {}).get("recipient_id") or "")
        if not recipient.isdigit():
            raise _form_error("recipient_id", "NUMBER_TYPE_COERCE", "Value is not snowflake.")
        cid = self._dms.get(recipient)
        if cid is None:
            cid = self.snowflake()
            self._channels[cid] = TextChannel(cid, 1, recipient_id=recipient)
            self._dms[recipient] = cid
        user = {"id": recipient, "username": f"user{recipient[-4:]}"}
        return 200, {"id": cid, "type": 1, "recipients": [user], "last_message_id": None}

    def _role_target(self, ctx: Ctx) -> tuple[Guild, set[str], str]:
        g = self._guild(ctx.params["guild_id"])
        if ctx.params["role_id"] not in g.roles:
            raise ApiError(*UNKNOWN_ROLE)
        roles = g.members.get(ctx.params["user_id"])
        if roles is None:
            raise ApiError(*UNKNOWN_MEMBER)
        if not g.can_manage_roles:
            raise ApiError(*MISSING_PERMISSIONS)
        return g, roles, ctx.params["role_id"]

    def _add_role(self, ctx: Ctx) -> tuple[int, Any]:
        _, roles, role = self._role_target(ctx)
        roles.add(role)
        self._audit("MEMBER_ROLE_ADD", ctx)
        return 204, None

    def _remove_role(self, ctx: Ctx) -> tuple[int, Any]:
        _, roles, role = self._role_target(ctx)
        roles.discard(role)
        self._audit("MEMBER_ROLE_REMOVE", ctx)
        return 204, None

    def _audit(self, action: str, ctx: Ctx) -> None:
        reason = ctx.headers.get("x-audit-log-reason")
        self.audit_log.append(
            {"action": action, **ctx.params, "reason": reason and unquote(reason)}
        )

    def _get_member(self, ctx: Ctx) -> tuple[int, Any]:
        g = self._guild(ctx.params["guild_id"])
        uid = ctx.params["user_id"]
        if uid not in g.members:
            raise ApiError(*UNKNOWN_MEMBER)
        user = {"id": uid, "username": f"user{uid[-4:]}"}
        return 200, {"user": user, "roles": sorted(g.members[uid]), "nick": None, "flags": 0}

    def _interaction(self, ctx: Ctx) -> Interaction:
        it = self.interactions.get(ctx.params["token"])
        if it is None or ctx.params["application_id"] != self.application_id or it.late:
            raise ApiError(*UNKNOWN_WEBHOOK)
        if time.time() - it.issued_at > self.token_ttl_s:
            raise ApiError(*INVALID_WEBHOOK_TOKEN)
        return it

    def _edit_original(self, ctx: Ctx) -> tuple[int, Any]:
        it = self._interaction(ctx)
        body = ctx.json if isinstance(ctx.json, dict) else {}
        base = it.original or self._new_message(it.channel_id, {}, [], allow_empty=True)
        edited = self._new_message(it.channel_id, {**_public(base), **body}, ctx.files)
        edited["id"] = base["id"]
        edited["edited_timestamp"] = edited.pop("timestamp")
        it.original = edited
        it.edits.append(time.time())
        return 200, _public(edited)

    def _followup(self, ctx: Ctx) -> tuple[int, Any]:
        it = self._interaction(ctx)
        body = ctx.json if isinstance(ctx.json, dict) else {}
        msg = self._new_message(it.channel_id, body, ctx.files)
        it.followups.append(msg)
        return 200, _public(msg)  # interaction followups always answer with the message

    def _commands(self, ctx: Ctx) -> tuple[int, Any]:
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


def _form_error(field_name: str, code: str, message: str) -> ApiError:
    errors = {field_name: {"_errors": [{"code": code, "message": message}]}}
    return ApiError(400, "Invalid Form Body", 50035, errors=errors)


def _public(msg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in msg.items() if not k.startswith("_")}


def _find(ch: TextChannel, msg_id: str) -> dict[str, Any]:
    return next(m for m in ch.messages if m["id"] == msg_id)
