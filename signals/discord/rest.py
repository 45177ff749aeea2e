"""Discord REST over httpx, paced by Discord's own rate-limit headers.

Every answer carries the bucket's state (``X-RateLimit-Bucket``, ``-Remaining``, ``-Reset-After``);
the client remembers it per (bucket, major parameter) and, before the next request on that
bucket, waits until the reset when nothing remains, so a burst is spread out instead of drawing
429s (Discord bans an IP for a while after 10,000 invalid requests in 10 minutes). It uses
``Reset-After`` (relative) rather than ``Reset`` (epoch) so a skewed clock cannot shorten a wait.
Requests on one bucket are serialized by a lock, so two coroutines never spend its last slot twice.

Callers choose what a limit means for them (``wait``):
- ``wait=True`` (role changes, commands, interaction edits): sleep through the bucket's reset and
  through a 429's ``retry_after`` (up to ``max_wait_s``), then retry.
- ``wait=False`` (outbox sends): never sleep; raise :class:`RateLimited` with the seconds to wait,
  whether the headers predicted the limit (nothing sent) or a 429 came back, so the dispatcher
  owns retries and its lanes.

The bot token only ever sits in the ``Authorization: Bot`` header. Interaction tokens sit in
webhook paths, so httpx's request log lines get them masked (:class:`WebhookTokenFilter`).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from signals.discord.config import DiscordConfig
from signals.errors import SignalsError

log = logging.getLogger(__name__)
MAJOR_PARAMS = ("channel_id", "guild_id", "webhook_id", "token")
_WEBHOOK_PATH = re.compile(r"(/webhooks/\d+/)[^/\s?]+")
_SLACK_S = 0.01  # added to each wait: the server's window closes just before we hear of it


class DiscordHTTPError(SignalsError):
    """Discord refused a request: the HTTP status, Discord's JSON error code and message."""

    def __init__(self, status: int, code: int, message: str, route: str) -> None:
        super().__init__(f"Discord {route}: {status} {message} (code {code})")
        self.status, self.code, self.discord_message, self.route = status, code, message, route


class RateLimited(DiscordHTTPError):
    """A rate limit (a 429, or the headers said the bucket is empty): come back in ``retry_after``
    seconds. ``sent`` is False when the request never left (predicted from the headers)."""

    def __init__(self, retry_after: float, route: str, *, scope: str = "user", sent: bool = True):
        super().__init__(429, 0, f"rate limited for {retry_after:.3f} s ({scope})", route)
        self.retry_after, self.scope, self.sent = retry_after, scope, sent


class WebhookTokenFilter(logging.Filter):
    """Masks interaction tokens in ``/webhooks/<app id>/<token>`` paths in a record's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "/webhooks/" in text:
            record.msg, record.args = _WEBHOOK_PATH.sub(r"\1***", text), None
        return True


_FILTER = WebhookTokenFilter()
for _name in ("httpx", "httpcore"):
    if _FILTER not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_FILTER)


@dataclass
class _Bucket:
    remaining: int = 1
    reset_at: float = 0.0  # time.monotonic() when the bucket refills


class DiscordRest:
    """An async Discord REST client (one per event loop: it owns an ``httpx.AsyncClient``)."""

    def __init__(
        self,
        config: DiscordConfig,
        *,
        timeout_s: float = 10.0,
        max_wait_s: float = 60.0,
        max_retries: int = 3,
    ) -> None:
        self.application_id = config.application_id
        self._base = config.api_url
        self._auth = {"Authorization": f"Bot {config.bot_token}"}
        self._http = httpx.AsyncClient(
            timeout=timeout_s,
            headers={"User-Agent": "DiscordBot (https://github.com/alpaca-improved, 1.0)"},
        )
        self.max_wait_s = max_wait_s
        self.max_retries = max_retries
        self.waited_s = 0.0  # total time spent waiting on buckets and 429s (for benchmarks)
        self.rate_limited = 0  # 429 answers seen
        self._bucket_of: dict[str, str] = {}  # route -> Discord's bucket hash
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._global_until = 0.0

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> DiscordRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        route: str,
        params: dict[str, str] | None = None,
        *,
        json: Any = None,
        files: list[tuple[str, bytes, str]] | None = None,
        reason: str | None = None,
        query: dict[str, str] | None = None,
        auth: bool = True,
        wait: bool = True,
    ) -> Any:
        """Call ``method route`` (``"/channels/{channel_id}/messages"`` with ``params``); the
        decoded JSON answer (None for 204). ``files`` are (filename, bytes, content type),
        sent as multipart ``files[n]`` with the JSON in ``payload_json``.

        Raises:
            RateLimited: ``wait=False`` and a limit applies, or the retries ran out.
            DiscordHTTPError: any other 4xx/5xx answer.
            httpx.TransportError: the request did not complete.
        """
        params = params or {}
        name = f"{method} {route}"
        major = next((params[p] for p in MAJOR_PARAMS if p in params), "")
        headers = dict(self._auth) if auth else {}
        if reason:
            headers["X-Audit-Log-Reason"] = quote(reason[:512], safe=" ")
        url = self._base + route.format(**params)
        lock = self._locks.setdefault((name, major), asyncio.Lock())
        async with lock:
            for attempt in range(self.max_retries + 1):
                await self._before(name, major, wait)
                resp = await self._send(method, url, headers, json, files, query)
                self._after(name, major, resp)
                if resp.status_code != 429:
                    return _result(resp, name)
                self.rate_limited += 1
                limited = _limited(resp, name)
                if not wait or attempt == self.max_retries or limited.retry_after > self.max_wait_s:
                    raise limited
                log.info("Discord %s: 429, retrying in %.3f s", name, limited.retry_after)
                await self._sleep(limited.retry_after + _SLACK_S)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Any,
        files: list[tuple[str, bytes, str]] | None,
        query: dict[str, str] | None,
    ) -> httpx.Response:
        if files:
            parts = {f"files[{i}]": (n, data, ctype) for i, (n, data, ctype) in enumerate(files)}
            form = {"payload_json": jsonlib.dumps(body or {})}
            return await self._http.request(
                method, url, headers=headers, data=form, files=parts, params=query
            )
        return await self._http.request(method, url, headers=headers, json=body, params=query)

    async def _before(self, name: str, major: str, wait: bool) -> None:
        now = time.monotonic()
        bucket = self._buckets.get((self._bucket_of.get(name, name), major))
        until = self._global_until
        if bucket is not None and bucket.remaining <= 0 and bucket.reset_at > now:
            until = max(until, bucket.reset_at)
        if until > now:
            if not wait:
                raise RateLimited(until - now, name, sent=False)
            await self._sleep(until - now + _SLACK_S)

    def _after(self, name: str, major: str, resp: httpx.Response) -> None:
        h = resp.headers
        if "x-ratelimit-bucket" in h:
            self._bucket_of[name] = h["x-ratelimit-bucket"]
        key = (self._bucket_of.get(name, name), major)
        if "x-ratelimit-remaining" in h and "x-ratelimit-reset-after" in h:
            after = float(h["x-ratelimit-reset-after"])
            self._buckets[key] = _Bucket(int(h["x-ratelimit-remaining"]), time.monotonic() + after)
        if resp.status_code == 429:
            retry = _limited(resp, name).retry_after
            if h.get("x-ratelimit-global") == "true":
                self._global_until = time.monotonic() + retry
            elif h.get("x-ratelimit-scope") != "shared":
                self._buckets[key] = _Bucket(0, time.monotonic() + retry)

    async def _sleep(self, seconds: float) -> None:
        self.waited_s += seconds
        await asyncio.sleep(seconds)

    # -- the calls the signals service makes -------------------------------------------------
    async def create_message(
        self,
        channel_id: str,
        payload: dict[str, Any],
        files: list[tuple[str, bytes, str]] | None = None,
        *,
        wait: bool = True,
    ) -> dict[str, Any]:
        route = "/channels/{channel_id}/messages"
        params = {"channel_id": channel_id}
        return await self.request("POST", route, params, json=payload, files=files, wait=wait)  # type: ignore[no-any-return]

    async def list_messages(
        self, channel_id: str, *, after: str | None = None, limit: int = 100, wait: bool = True
    ) -> list[dict[str, Any]]:
        query = {"limit": str(limit), **({"after": after} if after else {})}
        route = "/channels/{channel_id}/messages"
        return await self.request(  # type: ignore[no-any-return]
            "GET", route, {"channel_id": channel_id}, query=query, wait=wait
        )

    async def create_dm(self, recipient_id: str, *, wait: bool = True) -> str:
        body = {"recipient_id": recipient_id}
        answer = await self.request("POST", "/users/@me/channels", json=body, wait=wait)
        return str(answer["id"])

    async def edit_original(self, token: str, payload: dict[str, Any]) -> dict[str, Any]:
        route = "/webhooks/{webhook_id}/{token}/messages/@original"
        params = {"webhook_id": self.application_id, "token": token}
        return await self.request("PATCH", route, params, json=payload, auth=False)  # type: ignore[no-any-return]

    async def followup(self, token: str, payload: dict[str, Any]) -> dict[str, Any]:
        params = {"webhook_id": self.application_id, "token": token}
        return await self.request(  # type: ignore[no-any-return]
            "POST", "/webhooks/{webhook_id}/{token}", params, json=payload, auth=False
        )


def _limited(resp: httpx.Response, name: str) -> RateLimited:
    try:
        body = resp.json()
        retry = float(body.get("retry_after"))
    except (ValueError, TypeError, AttributeError):
        retry = float(resp.headers.get("retry-after", "1") or 1)
    scope = resp.headers.get("x-ratelimit-scope") or (
        "global" if resp.headers.get("x-ratelimit-global") == "true" else "user"
    )
    return RateLimited(retry, name, scope=scope)


def _result(resp: httpx.Response, name: str) -> Any:
    if resp.status_code == 204:
        return None
    if resp.is_success:
        return resp.json()
    try:
        body = resp.json()
        code, message = int(body.get("code", 0)), str(body.get("message", ""))
    except (ValueError, TypeError, AttributeError):
        code, message = 0, resp.reason_phrase or "error"
    raise DiscordHTTPError(resp.status_code, code, message, name)
