"""``POST /discord/interactions``: Discord's HTTP interactions endpoint (no Gateway needed).

Order of work for every request, as Discord requires:

1. Verify ``X-Signature-Ed25519`` over ``X-Signature-Timestamp + raw body`` with the app's public
   key (``DISCORD_APPLICATION_PUBLIC_KEY``) *before* parsing anything; a missing or bad
   signature, or a timestamp more than 5 minutes away, gets 401 and nothing else happens
   (Discord sends badly signed requests on purpose and removes an endpoint that accepts them).
2. PING → PONG (``{"type": 1}``).
3. A slash command or a button press is answered within Discord's 3 s budget. The work runs in a
   worker thread; if it is done within ``defer_after_s`` (1 s) the answer goes back inline
   (4 CHANNEL_MESSAGE, or 7 UPDATE_MESSAGE for a button); otherwise the endpoint answers 5 / 6
   (deferred) at once and ``PATCH``es ``/webhooks/{app}/{token}/messages/@original`` when done.

Subscriber commands (``/plans``, ``/subscribe plan:<id>``, ``/status``, ``/unsubscribe
plan:<id>``) go to :class:`signals.interfaces.Subscriptions`; console commands (``/status`` for an
operator, ``/positions``, ``/pnl``, ``/halt``, ``/resume``, ``/flatten``) to
:class:`signals.interfaces.Console`, which authorizes the user, audits every call and refuses
non-operators. A destructive command's first answer only shows a Confirm button carrying the
console's one-time token (custom_id ``confirm:<command>:<token>``: the command travels with the
token, so nothing is kept here between the two requests); the console acts only on that press.
Every answer is ephemeral (flags 64): console output and payment links are for the caller alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from signals.discord import replies as r
from signals.discord.config import DiscordConfig
from signals.discord.rest import DiscordRest
from signals.interfaces import Console, Subscriptions
from signals.model import Channel, Role

log = logging.getLogger(__name__)
PATH = "/discord/interactions"
MAX_AGE_S = 300.0
CONSOLE_COMMANDS = frozenset({"positions", "pnl", "halt", "resume", "flatten"})
SUBSCRIBER_COMMANDS = frozenset({"plans", "subscribe", "status", "unsubscribe"})
Work = Callable[[], dict[str, Any]]


class InteractionsEndpoint:
    """The endpoint's state: the verify key, the services, the deferred answers in flight."""

    def __init__(
        self,
        config: DiscordConfig,
        subscriptions: Subscriptions | None,
        console: Console | None,
        *,
        rest: DiscordRest | None = None,
        is_operator: Callable[[str], bool] | None = None,
        defer_after_s: float = 1.0,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.subscriptions = subscriptions
        self.console = console
        self.is_operator = is_operator or self._is_operator
        self.defer_after_s = defer_after_s
        self.max_age_s = max_age_s
        self.clock = clock
        self._key = config.verify_key()
        self._rest = rest
        self._tasks: set[asyncio.Task[None]] = set()
        self.rejected = 0  # requests refused for their signature or timestamp

    def routes(self) -> list[Route]:
        return [Route(PATH, self.handle, methods=["POST"])]

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait for the deferred answers still being worked on (at shutdown)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)

    # -- the request ------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        if not self.verify(request.headers, raw):
            self.rejected += 1
            return JSONResponse({"error": "invalid request signature"}, status_code=401)
        try:
            payload = json.loads(raw)
            kind = int(payload["type"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "not an interaction"}, status_code=400)
        if kind == 1:
            return JSONResponse({"type": r.PONG})
        if kind == 2:
            return JSONResponse(await self._answer(payload, self._command(payload), update=False))
        if kind == 3:
            return JSONResponse(await self._answer(payload, self._component(payload), update=True))
        return JSONResponse({"error": f"interaction type {kind} is not handled"}, status_code=400)

    def verify(self, headers: Any, raw: bytes) -> bool:
        """The Ed25519 signature over timestamp + body, and a timestamp within ``max_age_s``."""
        sig, ts = headers.get("x-signature-ed25519"), headers.get("x-signature-timestamp")
        if not sig or not ts:
            return False
        try:
            signature, stamp = bytes.fromhex(sig), int(ts)
        except ValueError:
            return False
        if abs(self.clock() - stamp) > self.max_age_s:
            return False
        try:
            self._key.verify(signature, ts.encode() + raw)
        except InvalidSignature:
            return False
        return True

    async def _answer(self, payload: dict[str, Any], work: Work, *, update: bool) -> dict[str, Any]:
        """Inline if ``work`` finishes within ``defer_after_s``, else deferred and PATCHed."""
        task = asyncio.ensure_future(asyncio.to_thread(_safe, work))
        done, _ = await asyncio.wait({task}, timeout=self.defer_after_s)
        if task in done:
            return {
                "type": r.UPDATE_MESSAGE if update else r.CHANNEL_MESSAGE,
                "data": task.result(),
            }
        follow = asyncio.create_task(self._finish(str(payload["token"]), task))
        self._tasks.add(follow)
        follow.add_done_callback(self._tasks.discard)
        if update:
            return {"type": r.DEFERRED_UPDATE}
        return {"type": r.DEFERRED_CHANNEL_MESSAGE, "data": {"flags": r.EPHEMERAL}}

    async def _finish(self, token: str, task: asyncio.Future[dict[str, Any]]) -> None:
        data = await task
        try:
            if self._rest is not None:
                await self._rest.edit_original(token, data)
                return
            # a client per answer: webhook buckets are per token anyway, and an httpx client
            # belongs to the loop that uses it
            async with DiscordRest(self.config) as rest:
                await rest.edit_original(token, data)
        except Exception as exc:  # noqa: BLE001 (the caller is gone; say why in the log)
            log.warning("Discord: could not deliver a deferred answer: %s", exc)

    # -- commands (run in a worker thread) ----------------------------------------------------
    def _command(self, payload: dict[str, Any]) -> Work:
        data = payload.get("data") or {}
        name = str(data.get("name", ""))
        opts = {str(o["name"]): str(o.get("value", "")) for o in data.get("options") or []}
        user = _user_id(payload)
        if name == "status":  # the operator's trading status, or the subscriber's plans

            def status() -> dict[str, Any]:
                if self.is_operator(user):  # may read the database: in the worker thread
                    return self._console(user, "status", "")
                return self._subscriber(user, "status", "")

            return status
        if name in CONSOLE_COMMANDS:
            return lambda: self._console(user, name, opts.get("args", ""))
        if name in SUBSCRIBER_COMMANDS:
            return lambda: self._subscriber(user, name, opts.get("plan", ""))
        return lambda: r.message(f"Unknown command /{name}.")

    def _is_operator(self, user: str) -> bool:
        """The console's own role check when it has one (``DISCORD_OPERATOR_IDS`` or a
        subscriber row with the operator role), else ``DISCORD_OPERATOR_IDS`` alone."""
        role_of = getattr(self.console, "role_of", None)
        if role_of is not None:
            return bool(role_of(Channel.DISCORD, user) == Role.OPERATOR)
        return self.config.is_operator(user)

    def _console(self, user: str, name: str, args: str) -> dict[str, Any]:
        if self.console is None:
            return r.message("The operator console is not enabled on this bot.")
        reply = self.console.handle(Channel.DISCORD, user, name, args)
        buttons = r.confirm_buttons(name, reply.confirm_token) if reply.confirm_token else None
        return r.message(reply.text, buttons)

    def _subscriber(self, user: str, name: str, plan: str) -> dict[str, Any]:
        subs = self.subscriptions
        if subs is None:
            return r.message("Subscriptions are not enabled on this bot.")
        if name == "plans":
            return r.message(r.plans_text(subs.plans()))
        sid = subs.register(Channel.DISCORD, user)
        if name == "status":
            return r.message(r.status_text(subs.status(sid)))
        if not plan:
            return r.message(f"Name the plan: /{name} plan:<id> (see /plans).")
        if name == "unsubscribe":
            return r.message(subs.unsubscribe(sid, plan))
        link = subs.checkout(sid, plan)
        text = f"Pay for plan `{plan}` here; access follows the payment (this link is yours)."
        return r.message(text, [r.link_button("Pay and subscribe", link.url)])

    def _component(self, payload: dict[str, Any]) -> Work:
        custom_id = str((payload.get("data") or {}).get("custom_id", ""))
        user = _user_id(payload)
        kind, _, rest = custom_id.partition(":")
        command, _, token = rest.partition(":")
        if kind == "cancel":
            return lambda: r.message(f"/{command} cancelled; nothing was done.", [])
        if kind != "confirm" or not token or self.console is None:
            return lambda: r.message("This button is no longer valid.", [])
        console = self.console

        def confirm() -> dict[str, Any]:
            reply = console.handle(Channel.DISCORD, user, command, "", confirm_token=token)
            return r.message(reply.text, [])

        return confirm


def discord_routes(
    config: DiscordConfig,
    subscriptions: Subscriptions | None,
    console: Console | None,
    **options: Any,
) -> list[Route]:
    """The starlette route(s) of the interactions endpoint (``POST /discord/interactions``).

    ``options`` go to :class:`InteractionsEndpoint` (``rest``, ``is_operator``, ``defer_after_s``).
    """
    return InteractionsEndpoint(config, subscriptions, console, **options).routes()


def _user_id(payload: dict[str, Any]) -> str:
    who = (payload.get("member") or {}).get("user") or payload.get("user") or {}
    return str(who.get("id", ""))


def _safe(work: Work) -> dict[str, Any]:
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 (answer the user in one line; the log has the rest)
        log.exception("Discord interaction failed")
        return r.message(f"Sorry, that failed: {' '.join(str(exc).split())[:300]}")
