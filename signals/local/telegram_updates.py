"""How updates leave the fake Bot API: long polling (``getUpdates``) or a webhook.

``getUpdates``: ``offset`` confirms every update below it (a negative offset keeps only the last
``-offset``), ``limit`` is 1-100, ``timeout`` long-polls until an update arrives, and
``allowed_updates`` persists for later calls as Telegram documents. A second poller ends the
first with 409 ``Conflict: terminated by other getUpdates request``; polling while a webhook is
set is 409 too.

Webhook: ``setWebhook`` starts one delivery task that POSTs the oldest pending update as JSON to
the URL with ``X-Telegram-Bot-Api-Secret-Token`` (when a secret is set), drops it on a 2xx answer
(executing a method given in the answer body, as Telegram allows) and otherwise retries it with
exponential backoff, recording ``last_error_date``/``last_error_message`` for
``getWebhookInfo``. Deliveries go one at a time, in order (``max_connections`` is kept, not used).
Telegram requires HTTPS; the fake also accepts plain HTTP to a loopback host.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from signals.local.telegram_state import State
from signals.local.telegram_wire import ApiError, Params, bad_request

UPDATE_KINDS = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "message_reaction",
        "message_reaction_count",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
CONFLICT_POLLER = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One webhook POST: the update, the receiver's status (None: no answer) and the error."""

    t: float
    update_id: int
    status: int | None
    error: str | None


@dataclass
class Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    generation: int
    last_error_date: int | None = None
    last_error_message: str | None = None


class Updates:
    """Long polling and webhook delivery over the shared :class:`State` (guarded by ``lock``)."""

    def __init__(
        self,
        state: State,
        lock: threading.RLock,
        run_method: Callable[[str, Params], Any],
        backoff_s: tuple[float, float],
    ) -> None:
        self.state = state
        self.lock = lock
        self.run_method = run_method
        self.backoff_s = backoff_s
        self.webhook: Webhook | None = None
        self.deliveries: list[WebhookDelivery] = []
        self.METHODS: dict[str, Callable[[Params], Any]] = {
            "setwebhook": self.set_webhook,
            "deletewebhook": self.delete_webhook,
            "getwebhookinfo": self.get_webhook_info,
        }
        self._generation = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event = asyncio.Event()
        self._poller: object | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._closing = False

    def notify(self) -> None:
        """Wake long polls and the webhook task (callable from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def close(self) -> None:
        """End long polls (the server is stopping)."""
        self._closing = True
        self.notify()

    def _wake(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- getUpdates ------------------------------------------------------------------------
    async def get_updates(self, params: Params) -> list[dict[str, Any]]:
        with self.lock:
            if self.webhook is not None:
                raise ApiError(409, CONFLICT_WEBHOOK)
            offset = params.get_int("offset")
            if offset is not None:
                self.state.confirm(offset)
            limit = min(100, max(1, params.get_int("limit") or 100))
            self._set_allowed(params)
            try:
                timeout = max(0.0, float(params.values.get("timeout") or 0))
            except (TypeError, ValueError):
                raise bad_request("invalid timeout specified") from None
        me = object()
        if self._poller is not None:
            self._wake()  # the earlier poller ends with 409
        self._poller = me
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                event = self._event
                with self.lock:
                    if self.webhook is not None:
                        raise ApiError(409, CONFLICT_WEBHOOK)
                    batch = copy.deepcopy(self.state.updates[:limit])
                if batch:
                    return batch
                if self._poller is not me:
                    raise ApiError(409, CONFLICT_POLLER)
                remaining = deadline - loop.time()
                if remaining <= 0 or self._closing:
                    return []
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
        finally:
            if self._poller is me:
                self._poller = None

    def _set_allowed(self, params: Params) -> None:
        allowed = params.get_json("allowed_updates")
        if allowed is None:
            return
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            raise bad_request("can't parse allowed updates JSON object")
        self.state.allowed_updates = [a for a in allowed if a in UPDATE_KINDS]

    # -- webhook methods ---------------------------------------------------------------------
    def set_webhook(self, params: Params) -> bool:
        url = params.get_str("url") or ""
        if not url:
            return self.delete_webhook(params)
        parts = urlsplit(url)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if not parts.hostname or not (
            parts.scheme == "https" or (parts.scheme, loopback) == ("http", True)
        ):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get_str("secret_token")
        if secret is not None and not _SECRET.fullmatch(secret):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        max_connections = params.get_int("max_connections") or 40
        if not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        self._set_allowed(params)
        if params.get_bool("drop_pending_updates"):
            self.state.updates.clear()
        self._generation += 1
        self.webhook = Webhook(url, secret, max_connections, self._generation)
        if self._loop is not None:
            self._task = self._loop.create_task(self._deliver(self._generation))
        self.notify()
        return True

    def delete_webhook(self, params: Params) -> bool:
        if params.get_bool("drop_pending_updates"):
            self.state.updates.clear()
        self.webhook = None
        self._generation += 1
        self.notify()
        return True

    def get_webhook_info(self, params: Params) -> dict[str, Any]:
        hook = self.webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.state.updates),
        }
        if hook is None:
            return info
        info.update({"ip_address": "127.0.0.1", "max_connections": hook.max_connections})
        if self.state.allowed_updates:
            info["allowed_updates"] = list(self.state.allowed_updates)
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
        return info

    # -- webhook delivery --------------------------------------------------------------------
    async def _deliver(self, generation: int) -> None:
        backoff = self.backoff_s[0]
        async with httpx.AsyncClient(timeout=10.0) as client:
            while True:
                event = self._event
                with self.lock:
                    hook = self.webhook
                    if hook is None or hook.generation != generation:
                        return
                    update = copy.deepcopy(self.state.updates[0]) if self.state.updates else None
                if update is None:
                    await event.wait()
                    continue
                status, error, body = await self._post(client, hook, update)
                with self.lock:
                    self.deliveries.append(
                        WebhookDelivery(time.time(), update["update_id"], status, error)
                    )
                    if hook.generation != self._generation:
                        return
                    if error is None:
                        self.state.confirm(update["update_id"] + 1)
                    else:
                        hook.last_error_date = self.state.now()
                        hook.last_error_message = error
                if error is None:
                    backoff = self.backoff_s[0]
                    self._reply_method(body)
                else:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.backoff_s[1])

    @staticmethod
    async def _post(
        client: httpx.AsyncClient, hook: Webhook, update: dict[str, Any]
    ) -> tuple[int | None, str | None, bytes]:
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        try:
            resp = await client.post(hook.url, content=json.dumps(update), headers=headers)
        except httpx.ConnectError:
            return None, "Connection refused", b""
        except httpx.TimeoutException:
            return None, "Read timeout expired", b""
        except httpx.HTTPError as exc:
            return None, f"Connection error: {type(exc).__name__}", b""
        if 200 <= resp.status_code < 300:
            return resp.status_code, None, resp.content
        return (
            resp.status_code,
            f"Wrong response from the webhook: {resp.status_code} {resp.reason_phrase}",
            b"",
        )

    def _reply_method(self, body: bytes) -> None:
        """Run a method the webhook answered with (``{"method": "sendMessage", ...}``)."""
        try:
            data = json.loads(body) if body.strip() else None
        except ValueError:
            return
        if not isinstance(data, dict) or not isinstance(data.get("method"), str):
            return
        name = data.pop("method").lower()
        with contextlib.suppress(ApiError):  # Telegram reports nothing back for a failed one
            self.run_method(name, Params(data))
