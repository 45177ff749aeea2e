"""Optional HTTP basic auth for the whole dashboard (every route, static files included).

``ALPACA_IMPROVED_DASHBOARD_USER`` and ``ALPACA_IMPROVED_DASHBOARD_PASSWORD`` (or their
``*_FILE`` variants, a mounted secret: the file beats the variable) turn it on; both or
neither must be set. Without them the dashboard is open, and whoever serves it must bind it to
127.0.0.1 only. The password is compared in constant time and never logged or rendered.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from signals.errors import ConfigError

USER_ENV = "ALPACA_IMPROVED_DASHBOARD_USER"
PASSWORD_ENV = "ALPACA_IMPROVED_DASHBOARD_PASSWORD"
REALM = "alpaca-improved dashboard"


def _value(env: Mapping[str, str], name: str) -> str | None:
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ConfigError(
                f"{name}_FILE={path} cannot be read ({exc.strerror}); mount the secret file "
                f"there or unset {name}_FILE"
            ) from None
    return env.get(name) or None


def credentials(env: Mapping[str, str]) -> tuple[str, str] | None:
    """``(user, password)`` from the environment, None when auth is off.

    Raises:
        ConfigError: Only one of the two is set, or a ``*_FILE`` cannot be read.
    """
    user, password = _value(env, USER_ENV), _value(env, PASSWORD_ENV)
    if user is None and password is None:
        return None
    if user is None or password is None:
        missing = USER_ENV if user is None else PASSWORD_ENV
        raise ConfigError(
            f"dashboard basic auth needs both {USER_ENV} and {PASSWORD_ENV} (or *_FILE); "
            f"{missing} is not set: set it, or unset the other to serve without auth"
        )
    return user, password


class BasicAuth:
    """ASGI middleware: 401 with a ``WWW-Authenticate`` challenge unless the credentials match."""

    def __init__(self, app: ASGIApp, user: str, password: str) -> None:
        self.app = app
        self.expected = f"{user}:{password}".encode()

    def _ok(self, scope: Scope) -> bool:
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return secrets.compare_digest(given, self.expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._ok(scope):
            await self.app(scope, receive, send)
            return
        headers = [
            (b"www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode()),
            (b"content-type", b"text/plain; charset=utf-8"),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": b"authentication required\n"})
