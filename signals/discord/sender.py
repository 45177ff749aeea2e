"""The Discord :class:`signals.interfaces.Sender`: one outbox row -> one channel or DM message.

Exactly once, with Discord's help: every message carries ``nonce`` = the first 25 characters of
the outbox row's idempotency key and ``enforce_nonce: true``, so if the dispatcher sends a row
again after a crash (the first POST may or may not have landed), Discord returns the message it
already created with that nonce within the last few minutes instead of posting a second one.

:meth:`DiscordSender.probe` settles an in-flight row without posting: it scans the channel's
messages after ``last_message_id`` for ours (by nonce where the listing carries it, else by our
bot's author id and the exact text). Not found means not delivered; the dispatcher's resend then
carries the same nonce, so a scan that missed a message within the nonce window still cannot
duplicate it. (A blind resend as the probe itself would be unsafe: the probe does not know when
the first attempt was made, and outside the window the nonce no longer protects.)

Errors (never retried here; the dispatcher owns retries and the lanes):
- 429, or the bucket headers say it is empty → ``DeliveryError(retry_after=...)``.
- 403 (no access to the channel, DMs closed) and 404 (channel or user gone) → ``blocked``.
- other 4xx → ``permanent``; 401 (a wrong or revoked token) and 5xx / network → transient, so
  nothing is dead-lettered while an operator fixes the token.
"""

from __future__ import annotations

from typing import Any

import httpx

from signals.discord import replies
from signals.discord.rest import DiscordHTTPError, DiscordRest, RateLimited
from signals.interfaces import Delivered, DeliveryError, Lane, OutboundMessage
from signals.model import Channel, TargetKind

NONCE_CHARS = 25  # Discord's limit on a nonce's length
GLOBAL_RATE = (50, 1.0)  # per bot
CHANNEL_RATE = (5, 5.0)  # per channel (messages.create bucket)
PROBE_PAGES = 10  # 1000 messages after last_message_id at most


def nonce_of(msg: OutboundMessage) -> str:
    return msg.idem_key[:NONCE_CHARS]


class DiscordSender:
    """Posts outbox rows through :class:`DiscordRest` (``limits_scale`` matches the fake's)."""

    channel = Channel.DISCORD

    def __init__(self, rest: DiscordRest, *, limits_scale: float = 1.0) -> None:
        self.rest = rest
        self.scale = limits_scale
        self._dm_channels: dict[str, str] = {}  # user id -> DM channel id

    def lanes(self, msg: OutboundMessage) -> tuple[Lane, ...]:
        (g_rate, g_per), (c_rate, c_per) = GLOBAL_RATE, CHANNEL_RATE
        where = f"dm:{msg.target}" if msg.target_kind is TargetKind.DM else msg.target
        return (
            Lane("discord:global", g_rate, g_per / self.scale),
            Lane(f"discord:channel:{where}", c_rate, c_per / self.scale),
        )

    async def send(self, msg: OutboundMessage) -> Delivered:
        if len(msg.text) > replies.MAX_CONTENT:
            raise DeliveryError(
                f"text is {len(msg.text)} characters; Discord allows {replies.MAX_CONTENT}",
                permanent=True,
            )
        payload: dict[str, Any] = {
            "content": msg.text,
            "nonce": nonce_of(msg),
            "enforce_nonce": True,
            "allowed_mentions": {"parse": []},
        }
        buttons = [_button(b.label, b.callback_data, b.url) for b in msg.buttons]
        if buttons:
            payload["components"] = [{"type": 1, "components": buttons[:5]}]
        files = None
        if msg.image is not None:
            payload["attachments"] = [{"id": 0, "filename": "signal.png"}]
            files = [("signal.png", msg.image, "image/png")]
        answer = await _guard(self._post(msg, payload, files))
        return Delivered(message_id=str(answer["id"]))

    async def _post(
        self, msg: OutboundMessage, payload: dict[str, Any], files: Any
    ) -> dict[str, Any]:
        channel_id = await self._channel_id(msg)
        return await self.rest.create_message(channel_id, payload, files, wait=False)

    async def probe(self, msg: OutboundMessage, last_message_id: str | None) -> Delivered | None:
        return await _guard(self._scan(msg, last_message_id))

    async def _scan(self, msg: OutboundMessage, after: str | None) -> Delivered | None:
        channel_id = await self._channel_id(msg)
        nonce = nonce_of(msg)
        for _ in range(PROBE_PAGES):
            page = await self.rest.list_messages(channel_id, after=after, limit=100, wait=False)
            for m in page:
                if _ours(m, self.rest.application_id, nonce, msg.text):
                    return Delivered(message_id=str(m["id"]))
            if len(page) < 100 or after is None:  # the end (or, without an anchor, the latest)
                return None
            after = max((str(m["id"]) for m in page), key=int)
        raise DeliveryError(f"probe: more than {PROBE_PAGES * 100} messages to scan; retry later")

    async def _channel_id(self, msg: OutboundMessage) -> str:
        if msg.target_kind is not TargetKind.DM:
            return msg.target
        cached = self._dm_channels.get(msg.target)
        if cached is None:  # POST /users/@me/channels answers the same channel every time
            cached = await self.rest.create_dm(msg.target, wait=False)
            self._dm_channels[msg.target] = cached
        return cached


def _ours(m: dict[str, Any], app_id: str, nonce: str, text: str) -> bool:
    if str((m.get("author") or {}).get("id")) != app_id:
        return False
    if m.get("nonce") is not None:
        return str(m["nonce"]) == nonce
    return m.get("content") == text


def _button(label: str, callback: str | None, url: str | None) -> dict[str, Any]:
    if url:
        return replies.link_button(label, url)
    return replies.button(label, callback or label)


async def _guard(call: Any) -> Any:
    """Run a REST call, turning Discord's answers into :class:`DeliveryError` facts."""
    try:
        return await call
    except RateLimited as e:
        raise DeliveryError(str(e), retry_after=e.retry_after) from e
    except DiscordHTTPError as e:
        if e.status in (403, 404):
            raise DeliveryError(str(e), blocked=True) from e
        if e.status == 401:
            raise DeliveryError(f"{e}: DISCORD_BOT_TOKEN is wrong or revoked") from e
        if 400 <= e.status < 500:
            raise DeliveryError(str(e), permanent=True) from e
        raise DeliveryError(str(e)) from e
    except httpx.TransportError as e:
        raise DeliveryError(f"Discord unreachable: {type(e).__name__}: {e}") from e
