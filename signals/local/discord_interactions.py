"""Discord's side of an HTTP interactions endpoint: signed POSTs, the 3 s budget, routine checks.

:class:`InteractionSender` holds the application's Ed25519 key pair (Discord keeps the private
half; the app is configured with :attr:`InteractionSender.public_key_hex`, which is what
``DISCORD_APPLICATION_PUBLIC_KEY`` holds) and POSTs interactions to the bot's endpoint the way
Discord does: the raw JSON body with ``X-Signature-Ed25519`` = hex(Ed25519(timestamp + body)) and
``X-Signature-Timestamp`` = the Unix time in seconds. Each delivered interaction's token is
registered with the :class:`~signals.local.discord_server.DiscordApiServer`, so the app's
``PATCH .../messages/@original`` and follow-ups land there, and the answer is recorded on the
:class:`~signals.local.discord_state.Interaction`.

Discord gives the endpoint 3 s to answer; a later (or missing) answer is recorded in
:attr:`InteractionSender.failures` and the token dies, as the user would see "The application did
not respond". :meth:`InteractionSender.bad_signature` is Discord's routine check: an endpoint that
accepts a badly signed request gets its URL removed, recorded here as a failure.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signals.local.discord_server import DiscordApiServer
from signals.local.discord_state import Interaction

PING, APPLICATION_COMMAND, MESSAGE_COMPONENT = 1, 2, 3
BUDGET_S = 3.0


class InteractionSender:
    """Signs and delivers interactions to ``endpoint_url`` on behalf of ``server``'s app."""

    def __init__(
        self,
        server: DiscordApiServer,
        endpoint_url: str,
        *,
        channel_id: str | None = None,
        budget_s: float = BUDGET_S,
    ) -> None:
        self.server = server
        self.endpoint_url = endpoint_url
        self.channel_id = channel_id or server.add_channel(name="interactions")
        self.budget_s = budget_s
        self._key = Ed25519PrivateKey.generate()
        self.public_key_hex = (
            self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        )
        self.failures: list[str] = []
        self._http = httpx.Client()

    def close(self) -> None:
        self._http.close()

    # -- what Discord sends ------------------------------------------------------------------
    def ping(self) -> Interaction:
        return self.deliver({"type": PING})

    def command(
        self,
        name: str,
        user_id: str,
        options: dict[str, str] | None = None,
        guild_id: str | None = None,
    ) -> Interaction:
        """A slash command (string options), from a guild member or, without ``guild_id``, a DM."""
        opts = [{"name": k, "type": 3, "value": v} for k, v in (options or {}).items()]
        data = {"id": self.server.snowflake(), "name": name, "type": 1, "options": opts}
        return self.deliver({"type": APPLICATION_COMMAND, "data": data}, user_id, guild_id)

    def component(
        self,
        custom_id: str,
        user_id: str,
        message: dict[str, Any] | None,
        guild_id: str | None = None,
    ) -> Interaction:
        """A button press on ``message`` (e.g. an interaction's ``original``)."""
        data = {"custom_id": custom_id, "component_type": 2}
        payload = {"type": MESSAGE_COMPONENT, "data": data, "message": message or {}}
        return self.deliver(payload, user_id, guild_id)

    def bad_signature(self, how: str = "flipped") -> int:
        """Discord's routine check: a PING signed wrongly (``flipped`` bit, ``other_key``,
        ``missing`` headers). Returns the endpoint's status; anything but 401 is a failure."""
        body = json.dumps(self._envelope({"type": PING}, None, None)).encode()
        ts = str(int(time.time()))
        if how == "other_key":
            sig = Ed25519PrivateKey.generate().sign(ts.encode() + body).hex()
        else:
            raw = bytearray(self._key.sign(ts.encode() + body))
            raw[0] ^= 0x01
            sig = raw.hex()
        headers = {} if how == "missing" else _sig_headers(sig, ts)
        resp = self._http.post(self.endpoint_url, content=body, headers=headers, timeout=10)
        if resp.status_code != 401:
            self.failures.append(f"bad signature ({how}) answered {resp.status_code}, not 401")
        return resp.status_code

    # -- plumbing ----------------------------------------------------------------------------
    def deliver(
        self,
        partial: dict[str, Any],
        user_id: str | None = None,
        guild_id: str | None = None,
        *,
        timestamp: int | None = None,
    ) -> Interaction:
        """Sign and POST one interaction; record the answer on the server's record."""
        payload = self._envelope(partial, user_id, guild_id)
        it = Interaction(
            id=payload["id"],
            token=payload["token"],
            channel_id=self.channel_id,
            guild_id=guild_id,
            issued_at=time.time(),
            payload=payload,
        )
        self.server.register_interaction(it)
        body = json.dumps(payload, separators=(",", ":")).encode()
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sig = self._key.sign(ts.encode() + body).hex()
        start = time.monotonic()
        try:
            resp = self._http.post(
                self.endpoint_url,
                content=body,
                headers=_sig_headers(sig, ts),
                timeout=self.budget_s,  # Discord stops waiting here
            )
        except httpx.TimeoutException:
            self.failures.append(f"interaction {it.id}: no answer within {self.budget_s:g} s")
            self.server.record_callback(it.token, 0, None, time.monotonic() - start, True)
            return it
        elapsed = time.monotonic() - start
        late = elapsed > self.budget_s
        if late:
            self.failures.append(f"interaction {it.id}: answered after {elapsed:.2f} s")
        answer = _json(resp)
        if resp.status_code == 200 and not (isinstance(answer, dict) and "type" in answer):
            self.failures.append(f"interaction {it.id}: 200 without an interaction response")
        self.server.record_callback(it.token, resp.status_code, answer, elapsed, late)
        return it

    def _envelope(
        self, partial: dict[str, Any], user_id: str | None, guild_id: str | None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": self.server.snowflake(),
            "application_id": self.server.application_id,
            "token": "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(60),
            "version": 1,
            "channel_id": self.channel_id,
            "locale": "en-US",
            "entitlements": [],
            **partial,
        }
        if user_id is not None:
            user = {"id": user_id, "username": f"user{user_id[-4:]}", "global_name": None}
            if guild_id is not None:
                payload["guild_id"] = guild_id
                payload["member"] = {"user": user, "roles": sorted(self._roles(guild_id, user_id))}
                payload["context"] = 0
            else:
                payload["user"] = user
                payload["context"] = 1  # BOT_DM
        return payload

    def _roles(self, guild_id: str, user_id: str) -> set[str]:
        try:
            return self.server.member_roles(guild_id, user_id)
        except KeyError:
            return set()


def _sig_headers(sig: str, ts: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Discord-Interactions/1.0 (+https://discord.com)",
        "X-Signature-Ed25519": sig,
        "X-Signature-Timestamp": ts,
    }


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None
