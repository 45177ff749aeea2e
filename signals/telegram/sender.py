"""Telegram delivery for the dispatcher: one ``sendMessage`` / ``sendPhoto`` per outbox row, the
platform's errors classified, the rate-limit lanes named, and the in-flight probe.

Exactly once without idempotency keys
-------------------------------------
The Bot API has no idempotency key: if the process dies after ``sendMessage`` left and before
the outbox row recorded the message id, a blind re-send may post the signal twice. So every
signal message carries an inline keyboard whose first button's ``callback_data`` is
``sig:<first 16 hex chars of the outbox idem_key>`` (:func:`marker`; pressing it shows that
reference, which traces the message back to its outbox row and event). :meth:`probe` asks
Telegram whether that exact message exists, without a read API, by editing the reply markup
of the chat's next messages to *exactly the markup the row would have been sent with*:

- ``message is not modified`` -> that message already has our markup: it is ours, delivered;
- ``message can't be edited`` -> not a bot message (the user wrote it): look at the next id;
- ``message to edit not found`` three ids in a row -> past the end of the chat: never delivered
  (three, not one, so one deleted message in between does not end the search early);
- the edit *succeeds* -> a bot message whose markup differed, so not ours (a signal's markup is
  never edited after sending). Its keyboard is now ours, so the probe removes it again (a
  ``/status`` reply loses its buttons; nothing else is touched) and looks further.

The search starts after the chat's last known message id (``chat_state.last_message_id``)
and covers :data:`PROBE_WINDOW` ids. If the window is used up by other people's messages the
probe cannot tell and raises a *permanent* :class:`DeliveryError`: dead-lettered for an operator
rather than risking a duplicate. Edits count in the chat's flood lane, so a 429 met while
probing is waited out here (up to ``max_probe_wait`` seconds) instead of bouncing back.

For this to be exact the dispatcher records every sent message id as the chat's
``last_message_id``, keeps at most one row in flight per chat, and after a crash probes a
chat's in-flight rows in outbox order, recording each found id before the next probe: a probe
that passes over *another signal* would replace that signal's keyboard (and so its marker).
Without any known id the search starts at message 1, which is exact only in a chat whose first
:data:`PROBE_WINDOW` messages hold no other signal (a new chat).

An ambiguous failure of :meth:`send` itself (a read timeout, a dropped connection, a 5xx: the
request may have reached Telegram) probes at once from the last id this sender saw in the chat,
so the dispatcher's retry never re-sends a message Telegram already has; a connection that was
never made (connect error, pool timeout) is plainly transient.
"""

from __future__ import annotations

import asyncio
import warnings
from datetime import timedelta
from typing import Literal

import httpx
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from signals.interfaces import Delivered, DeliveryError, Lane, OutboundMessage
from signals.model import Channel, TargetKind
from signals.telegram.config import shield_token

MARKER_PREFIX = "sig:"
MARKER_LABEL = "ℹ️ Signal ref"
PROBE_WINDOW = 20
END_OF_CHAT = 3  # consecutive "not found" ids that mean the chat ends here
TEXT_LIMIT = 4096  # telegram.constants.MessageLimit.MAX_TEXT_LENGTH
CAPTION_LIMIT = 1024  # MessageLimit.CAPTION_LENGTH
BOT_LANE = Lane("telegram:bot", 30, 1.0)  # ~30 messages/s overall (Bot API FAQ)
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def marker(idem_key: str) -> str:
    """The probe marker a message for outbox row ``idem_key`` carries as its first button."""
    return f"{MARKER_PREFIX}{idem_key[:16]}"


def chat_id(target: str) -> int | str:
    """An outbox target as the Bot API wants it: a numeric chat id, or ``@channelusername``."""
    return int(target) if target.lstrip("-").isdigit() else target


def keyboard(msg: OutboundMessage) -> InlineKeyboardMarkup:
    """The markup ``msg`` is sent with: the marker button, then the message's own buttons."""
    rows = [[InlineKeyboardButton(MARKER_LABEL, callback_data=marker(msg.idem_key))]]
    for b in msg.buttons:
        if b.callback_data is not None and b.callback_data.startswith(MARKER_PREFIX):
            continue  # the renderer added a marker itself: ours is the one that counts
        rows.append([InlineKeyboardButton(b.label, callback_data=b.callback_data, url=b.url)])
    return InlineKeyboardMarkup(rows)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_seconds(exc: RetryAfter) -> float:
    """``retry_after`` in seconds whether PTB hands an int or (PTB_TIMEDELTA) a timedelta."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def delivery_error(exc: TelegramError, what: str, token: str = "") -> DeliveryError:
    """Classify a Bot API failure (see :class:`DeliveryError`); never includes the token."""
    text = str(exc).replace(token, "***") if token else str(exc)
    msg = f"telegram {what}: {text}"
    if isinstance(exc, RetryAfter):
        return DeliveryError(msg, retry_after=retry_seconds(exc))
    if isinstance(exc, ChatMigrated):
        return DeliveryError(msg, migrated_to=str(exc.new_chat_id))
    if isinstance(exc, Forbidden):
        return DeliveryError(msg, blocked=True)
    if isinstance(exc, InvalidToken):  # an operator's mistake: retry later, lose nothing
        return DeliveryError(f"telegram {what}: the bot token was refused; fix TELEGRAM_BOT_TOKEN")
    if isinstance(exc, BadRequest):
        return DeliveryError(msg, permanent=True)
    return DeliveryError(msg)  # NetworkError, TimedOut, Conflict, 5xx: transient


class TelegramSender:
    """:class:`signals.interfaces.Sender` over a python-telegram-bot :class:`~telegram.Bot`."""

    channel = Channel.TELEGRAM

    def __init__(
        self,
        bot: Bot,
        probe_window: int = PROBE_WINDOW,
        max_probe_wait: float = 30.0,
        limits_scale: float = 1.0,
    ) -> None:
        self.bot = bot
        shield_token(bot.token)  # httpx logs every URL, and the token is in each one
        # > 1 only against a local Bot API fake run with the same scale (the demo, benchmarks)
        self.scale = limits_scale
        self.probe_window = probe_window
        self.max_probe_wait = max_probe_wait
        self._last_ids: dict[str, int] = {}  # chat -> highest message id this sender saw

    def lanes(self, msg: OutboundMessage) -> tuple[Lane, ...]:
        """The bot-wide 30/s lane plus 1/s for a private chat or 20/min for a group/channel."""
        key = f"telegram:chat:{msg.target}"
        bot = BOT_LANE if self.scale == 1.0 else Lane(BOT_LANE.key, 30, 1.0 / self.scale)
        if msg.target_kind == TargetKind.DM:
            return (bot, Lane(key, 1, 1.0 / self.scale))
        return (bot, Lane(key, 20, 60.0 / self.scale))

    async def send(self, msg: OutboundMessage) -> Delivered:
        """``sendPhoto`` (caption) when the message has a chart, else ``sendMessage``."""
        target, markup = chat_id(msg.target), keyboard(msg)
        try:
            if msg.image is not None:
                sent = await self.bot.send_photo(
                    target,
                    photo=InputFile(msg.image, filename="chart.png"),
                    caption=_clip(msg.text, CAPTION_LIMIT),
                    reply_markup=markup,
                )
            else:
                sent = await self.bot.send_message(
                    target, _clip(msg.text, TEXT_LIMIT), reply_markup=markup
                )
        except NetworkError as exc:
            if isinstance(exc.__cause__, _NOT_SENT) or msg.target not in self._last_ids:
                raise delivery_error(exc, "send", self.bot.token) from None
            found = await self.probe(msg, str(self._last_ids[msg.target]))
            if found is None:
                raise delivery_error(exc, "send", self.bot.token) from None
            return found
        except TelegramError as exc:
            raise delivery_error(exc, "send", self.bot.token) from None
        self._seen(msg.target, sent.message_id)
        return Delivered(str(sent.message_id))

    async def probe(self, msg: OutboundMessage, last_message_id: str | None) -> Delivered | None:
        """Was ``msg`` delivered? (module docstring: the ``editMessageReplyMarkup`` probe)."""
        target, markup = chat_id(msg.target), keyboard(msg)
        start = int(last_message_id) + 1 if last_message_id else 1
        message_id, misses = start, 0
        # the window, stretched while a run of "not found" has begun but not yet ended
        while message_id < start + self.probe_window or 0 < misses < END_OF_CHAT:
            answer = await self._edit(target, message_id, markup)
            if answer == "ours":
                self._seen(msg.target, message_id)
                return Delivered(str(message_id))
            if answer == "missing":
                misses += 1
                if misses >= END_OF_CHAT:
                    return None
            else:
                misses = 0
            if answer == "edited":  # a bot message that is not ours: take our markup off again
                await self._edit(target, message_id, None)
            message_id += 1
        raise DeliveryError(
            f"telegram probe: messages {start}..{start + self.probe_window - 1} in chat "
            f"{msg.target} are all someone else's, so whether {marker(msg.idem_key)} was "
            "delivered cannot be told; dead-lettered rather than risk a duplicate",
            permanent=True,
        )

    async def _edit(
        self, target: int | str, message_id: int, markup: InlineKeyboardMarkup | None
    ) -> Literal["ours", "missing", "other", "edited"]:
        """One probe edit, classified; a flood wait (edits count in the chat's lane) is slept
        here, up to ``max_probe_wait`` seconds in all, so a probe right after a send to the
        same chat does not bounce between the dispatcher and a 429 forever."""
        waited = 0.0
        while True:
            try:
                await self.bot.edit_message_reply_markup(target, message_id, reply_markup=markup)
                return "edited"
            except RetryAfter as exc:
                wait = retry_seconds(exc)
                if waited + wait > self.max_probe_wait:
                    raise delivery_error(exc, f"probe of message {message_id}") from None
                waited += wait
                await asyncio.sleep(wait)
            except BadRequest as exc:
                answer = exc.message.lower()
                if "not modified" in answer:
                    return "ours"
                if "not found" in answer:
                    return "missing"
                if "can't be edited" in answer or "cannot be edited" in answer:
                    return "other"
                raise delivery_error(exc, f"probe of message {message_id}") from None
            except TelegramError as exc:
                raise delivery_error(exc, f"probe of message {message_id}") from None

    def _seen(self, target: str, message_id: int) -> None:
        self._last_ids[target] = max(message_id, self._last_ids.get(target, 0))
