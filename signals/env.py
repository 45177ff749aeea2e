"""Secrets of the signals service from mounted files or the environment, read one way.

``NAME_FILE`` (a mounted secret) wins over ``NAME``; an unreadable or empty file is a
:class:`ConfigError` naming the variable and the fix, never the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from signals.errors import ConfigError


def secret_from_env(environ: Mapping[str, str], name: str) -> str | None:
    """``<name>_FILE``'s contents (stripped), else ``<name>`` (stripped), else None."""
    path = environ.get(f"{name}_FILE", "").strip()
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{name}_FILE={path} cannot be read ({type(exc).__name__}); mount the secret "
                f"there or unset {name}_FILE to use {name}"
            ) from None
        if not value:
            raise ConfigError(f"{name}_FILE={path} is empty; write the secret into it")
        return value
    return environ.get(name, "").strip() or None
