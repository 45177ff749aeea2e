"""Telegram settings, from the environment or mounted secret files only, and the token's shield.

Variables (a ``*_FILE`` variable names a mounted secret file and beats the plain variable, so a
Kubernetes/Compose secret never has to sit in the environment):

    TELEGRAM_BOT_TOKEN / _FILE       the bot token from @BotFather (required)
    TELEGRAM_API_URL                 Bot API base the token is appended to
                                     (default https://api.telegram.org/bot; a local server or
                                     the local fake: http://127.0.0.1:PORT/bot)
    TELEGRAM_MODE                    polling (default) | webhook
    TELEGRAM_WEBHOOK_URL             public https URL Telegram POSTs updates to (webhook mode)
    TELEGRAM_WEBHOOK_SECRET / _FILE  the secret_token Telegram echoes in
                                     X-Telegram-Bot-Api-Secret-Token (webhook mode)
    TELEGRAM_OPERATOR_IDS            comma list of Telegram user ids with the operator role

The token is part of every Bot API URL (``POST {base}{token}/{method}``), so httpx's INFO line
``HTTP Request: POST https://.../bot<token>/sendMessage`` and PTB's DEBUG ``Set Bot API URL``
would print it. :func:`shield_token` puts the shared :class:`contracts.logs.SecretRedactor` on
those loggers (a logger filter runs before every handler, pytest's included), and the settings'
``repr`` and every error message name the variable, never the value.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from contracts.logs import SecretRedactor
from signals.env import secret_from_env
from signals.errors import ConfigError

DEFAULT_API_URL = "https://api.telegram.org/bot"
_TOKEN = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{1,200}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # Telegram's secret_token alphabet
# every logger that can see a Bot API URL (PTB's are created when telegram.ext is imported)
_URL_LOGGERS = ("httpx", "httpcore", "telegram")

Mode = Literal["polling", "webhook"]


@dataclass(frozen=True)
class TelegramConfig:
    """Validated Telegram settings; ``repr`` shows no secret."""

    token: str = field(repr=False)
    api_url: str = DEFAULT_API_URL
    mode: Mode = "polling"
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    operator_ids: frozenset[int] = frozenset()

    def is_operator(self, user_id: int | str) -> bool:
        return str(user_id).lstrip("-").isdigit() and int(user_id) in self.operator_ids


def _operator_ids(raw: str) -> frozenset[int]:
    ids = set()
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        if not part.isdigit():
            raise ConfigError(
                f"TELEGRAM_OPERATOR_IDS has {part!r}, not a Telegram user id; give a comma list "
                "of numeric ids (a user's id: message @userinfobot, or read it from /status)"
            )
        ids.add(int(part))
    return frozenset(ids)


def _api_url(raw: str) -> str:
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"TELEGRAM_API_URL={raw!r} is not an http(s) URL; use {DEFAULT_API_URL} "
            "or a local Bot API server's base such as http://127.0.0.1:8081/bot"
        )
    if "{token}" not in url and not url.endswith("/bot"):
        raise ConfigError(
            f"TELEGRAM_API_URL={raw!r} must end in /bot (the token is appended to it), "
            "e.g. http://127.0.0.1:8081/bot"
        )
    return url


def load_config(env: Mapping[str, str] | None = None) -> TelegramConfig:
    """Read and validate the Telegram settings (module docstring).

    Raises:
        ConfigError: one line naming the bad variable and the fix (never a secret's value).
    """
    env = os.environ if env is None else env
    token = secret_from_env(env, "TELEGRAM_BOT_TOKEN")
    if token is None:
        raise ConfigError(
            "set TELEGRAM_BOT_TOKEN (the token @BotFather gave the bot) or mount it as a file "
            "named by TELEGRAM_BOT_TOKEN_FILE"
        )
    if not _TOKEN.fullmatch(token):
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN is not a bot token (expected <digits>:<letters, digits, _ or ->,"
            " as @BotFather prints it); check the variable or the mounted file"
        )
    mode = env.get("TELEGRAM_MODE", "polling").strip().lower() or "polling"
    if mode not in ("polling", "webhook"):
        raise ConfigError(f"TELEGRAM_MODE={mode!r} is not a mode; use polling or webhook")
    webhook_url = env.get("TELEGRAM_WEBHOOK_URL", "").strip() or None
    secret = secret_from_env(env, "TELEGRAM_WEBHOOK_SECRET")
    if secret is not None and not _SECRET.fullmatch(secret):
        raise ConfigError(
            "TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and - "
            "(Telegram's secret_token alphabet)"
        )
    if mode == "webhook":
        if webhook_url is None or urlsplit(webhook_url).scheme not in ("http", "https"):
            raise ConfigError(
                "TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_URL, the public https URL of "
                "POST /telegram/webhook (e.g. https://bots.example.com/telegram/webhook)"
            )
        if secret is None:
            raise ConfigError(
                "TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_SECRET (or _FILE): without it "
                "anyone who finds the URL can post fake updates"
            )
    return TelegramConfig(
        token=token,
        api_url=_api_url(env.get("TELEGRAM_API_URL", "") or DEFAULT_API_URL),
        mode="webhook" if mode == "webhook" else "polling",
        webhook_url=webhook_url,
        webhook_secret=secret,
        operator_ids=_operator_ids(env.get("TELEGRAM_OPERATOR_IDS", "")),
    )


_redactor = SecretRedactor({})


def shield_token(*secrets: str | None) -> None:
    """Redact ``secrets`` (the bot token, the webhook secret) from every record logged by httpx,
    httpcore and python-telegram-bot, whatever handler (pytest's, the service's) receives it.

    Call it before the first ``Bot`` is built (PTB logs the URL in its constructor). Idempotent.
    """
    import telegram.ext  # noqa: F401  (creates PTB's loggers so they can be shielded)

    # a very short secret would redact ordinary words; the token is always long
    _redactor.secrets = _redactor.secrets | {s for s in secrets if s and len(s) >= 6}
    names = [
        name for name in list(logging.root.manager.loggerDict) if name.split(".")[0] in _URL_LOGGERS
    ]
    for name in {*names, *_URL_LOGGERS, "httpcore.connection", "httpcore.http11"}:
        logger = logging.getLogger(name)
        if _redactor not in logger.filters:
            logger.addFilter(_redactor)
