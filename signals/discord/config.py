"""Discord settings, from the environment or mounted secret files only; the token is never shown.

Variables (``DISCORD_BOT_TOKEN_FILE`` names a mounted secret file and beats the plain variable):

    DISCORD_APPLICATION_PUBLIC_KEY   the app's Ed25519 public key, 64 hex chars (Developer
                                     Portal > General Information); verifies every interaction
    DISCORD_APPLICATION_ID           the app's id (a snowflake: digits)
    DISCORD_BOT_TOKEN / _FILE        the bot's token (Developer Portal > Bot > Reset Token)
    DISCORD_API_URL                  REST base, default https://discord.com/api/v10 (the local
                                     fake: http://127.0.0.1:PORT/api/v10)
    DISCORD_GUILD_ID                 the server whose roles grant the paid channels (and where
                                     the slash commands are registered)
    DISCORD_OPERATOR_IDS             Discord user ids with the operator role (comma or space
                                     separated; the console reads the same variable)

The token travels only in the ``Authorization: Bot`` header; the config's ``repr`` and every
error name the variable, never its value, and ``contracts.logs.SecretRedactor`` (installed by
``configure_logging``) redacts ``DISCORD_BOT_TOKEN`` and its file's contents from every log line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from signals.env import secret_from_env
from signals.errors import ConfigError

DEFAULT_API_URL = "https://discord.com/api/v10"
_SNOWFLAKE = re.compile(r"\d{1,20}")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_TOKEN = re.compile(r"[A-Za-z0-9_.\-]{20,200}")


@dataclass(frozen=True)
class DiscordConfig:
    """Validated Discord settings; ``repr`` shows no secret."""

    public_key: str
    application_id: str
    bot_token: str = field(repr=False)
    api_url: str = DEFAULT_API_URL
    guild_id: str | None = None
    operator_ids: frozenset[str] = frozenset()

    def verify_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_key))

    def is_operator(self, user_id: str) -> bool:
        return str(user_id) in self.operator_ids


def _token(env: Mapping[str, str]) -> str:
    value = secret_from_env(env, "DISCORD_BOT_TOKEN") or ""
    if not value:
        raise ConfigError(
            "set DISCORD_BOT_TOKEN (Developer Portal > your app > Bot > Reset Token) or mount "
            "it as a file named by DISCORD_BOT_TOKEN_FILE"
        )
    if value.lower().startswith("bot "):
        raise ConfigError("DISCORD_BOT_TOKEN starts with 'Bot '; give the token alone")
    if not _TOKEN.fullmatch(value):
        raise ConfigError(
            "DISCORD_BOT_TOKEN is not a bot token (20-200 characters of letters, digits, '.', "
            "'_' and '-'); check the variable or the mounted file"
        )
    return value


def _snowflake(name: str, raw: str, what: str) -> str:
    if not _SNOWFLAKE.fullmatch(raw):
        raise ConfigError(f"{name}={raw!r} is not a Discord id (digits only); {what}")
    return raw


def _api_url(raw: str) -> str:
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"DISCORD_API_URL={raw!r} is not an http(s) URL; use {DEFAULT_API_URL} "
            "or the local fake's base such as http://127.0.0.1:8082/api/v10"
        )
    return url


def load_config(env: Mapping[str, str] | None = None) -> DiscordConfig:
    """Read and validate the Discord settings (module docstring).

    Raises:
        ConfigError: one line naming the bad variable and the fix (never the token).
    """
    env = os.environ if env is None else env
    key = env.get("DISCORD_APPLICATION_PUBLIC_KEY", "").strip()
    if not _HEX_KEY.fullmatch(key):
        raise ConfigError(
            "DISCORD_APPLICATION_PUBLIC_KEY must be the app's public key, 64 hex characters "
            "(Developer Portal > your app > General Information > Public Key)"
        )
    app_id = _snowflake(
        "DISCORD_APPLICATION_ID",
        env.get("DISCORD_APPLICATION_ID", "").strip(),
        "copy the Application ID from the Developer Portal's General Information",
    )
    guild = env.get("DISCORD_GUILD_ID", "").strip()
    what = "right-click the server > Copy Server ID (Developer Mode on)"
    operators = env.get("DISCORD_OPERATOR_IDS", "").replace(",", " ").split()
    for op in operators:
        _snowflake("DISCORD_OPERATOR_IDS", op, "give user ids (right-click a user > Copy User ID)")
    return DiscordConfig(
        public_key=key.lower(),
        application_id=app_id,
        bot_token=_token(env),
        api_url=_api_url(env.get("DISCORD_API_URL", "") or DEFAULT_API_URL),
        guild_id=_snowflake("DISCORD_GUILD_ID", guild, what) if guild else None,
        operator_ids=frozenset(operators),
    )
