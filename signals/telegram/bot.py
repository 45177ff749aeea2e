"""The Telegram bot: a python-telegram-bot ``Application`` and its two ways of getting updates.

- **Long polling** (``TELEGRAM_MODE=polling``, the default): PTB's ``Updater`` calls
  ``getUpdates`` with the offset of the last update it handled, so each update is processed
  once; it needs no public URL (Telegram answers 409 while a webhook is set, so polling first
  deletes any webhook).
- **Webhook** (``TELEGRAM_MODE=webhook``): start-up registers ``TELEGRAM_WEBHOOK_URL`` with
  ``setWebhook(url, secret_token=...)``; Telegram then POSTs every update to
  ``POST /telegram/webhook`` (:func:`webhook_route`, mounted in the signals service's starlette
  app), which answers 403 unless ``X-Telegram-Bot-Api-Secret-Token`` equals the secret
  (constant-time compare) and otherwise processes the update before answering 200.

The application is built without PTB's rate limiter: signal delivery goes through the
dispatcher's lanes (:class:`signals.telegram.sender.TelegramSender`), and command replies are
one per user action.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import BotCommand, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    filters,
)

from signals.errors import ConfigError
from signals.interfaces import Console, Subscriptions
from signals.telegram.config import TelegramConfig, shield_token
from signals.telegram.handlers import OPERATOR_COMMANDS, SUBSCRIBER_COMMANDS, BotHandlers

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ("message", "callback_query", "chat_member", "my_chat_member")

TgApp = Application[Any, Any, Any, Any, Any, Any]


def build_application(
    config: TelegramConfig, subscriptions: Subscriptions, console: Console
) -> TgApp:
    """The bot's ``Application`` with every handler registered (not started)."""
    shield_token(config.token, config.webhook_secret)
    builder = ApplicationBuilder().token(config.token).base_url(config.api_url)
    if config.mode == "webhook":
        builder = builder.updater(None)
    app: TgApp = builder.build()
    h = BotHandlers(subscriptions, console, config.operator_ids)
    private = filters.ChatType.PRIVATE
    app.add_handler(CommandHandler("start", h.start, filters=private))
    app.add_handler(CommandHandler("plans", h.plans, filters=private))
    app.add_handler(CommandHandler("subscribe", h.subscribe, filters=private))
    app.add_handler(CommandHandler("status", h.status, filters=private))
    app.add_handler(CommandHandler("unsubscribe", h.unsubscribe, filters=private))
    app.add_handler(CommandHandler(list(OPERATOR_COMMANDS), h.operator, filters=private))
    app.add_handler(CallbackQueryHandler(h.button))
    app.add_handler(ChatMemberHandler(_member_changed, ChatMemberHandler.CHAT_MEMBER))
    app.add_error_handler(h.error)
    return app


async def _member_changed(update: Update, context: object) -> None:
    change = update.chat_member
    if change is not None:  # the access reconciler reads the actual state with getChatMember
        log.info(
            "telegram chat %s: user %s is now %s",
            change.chat.id,
            change.new_chat_member.user.id,
            change.new_chat_member.status,
        )


async def start_bot(app: TgApp, config: TelegramConfig, poll_timeout: float = 10.0) -> None:
    """Initialize (``getMe``), publish the command menu, then poll or register the webhook.

    Raises:
        ConfigError: the Bot API refused the token (the message never contains it).
    """
    try:
        await app.initialize()
    except InvalidToken:
        raise ConfigError(
            f"the Bot API at {config.api_url} refused TELEGRAM_BOT_TOKEN; copy the token "
            "@BotFather gave this bot again"
        ) from None
    commands = {**SUBSCRIBER_COMMANDS, **OPERATOR_COMMANDS}
    await app.bot.set_my_commands([BotCommand(c, d) for c, d in commands.items()])
    if config.mode == "webhook":
        assert config.webhook_url is not None
        await app.bot.set_webhook(
            config.webhook_url,
            secret_token=config.webhook_secret,
            allowed_updates=list(ALLOWED_UPDATES),
        )
    else:
        assert app.updater is not None
        await app.updater.start_polling(
            timeout=timedelta(seconds=poll_timeout), allowed_updates=list(ALLOWED_UPDATES)
        )
    await app.start()


async def stop_bot(app: TgApp) -> None:
    """Stop polling (the last offset is confirmed to Telegram), the handlers, the HTTP pool."""
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    await app.shutdown()


def webhook_route(app: TgApp, secret: str) -> Route:
    """``POST /telegram/webhook``: 403 unless the secret header matches, else process, 200."""
    expected = secret.encode()

    async def receive(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            return Response(status_code=403)
        try:
            body = json.loads(await request.body())
            update = Update.de_json(body, app.bot)
        except (ValueError, TypeError, KeyError, TelegramError):
            return Response(status_code=400)  # Telegram never sends this: do not retry it
        await app.process_update(update)
        return Response(status_code=200)

    return Route(WEBHOOK_PATH, receive, methods=["POST"])
