"""Alpaca keys from mounted files or the environment, re-readable while the runner runs.

A Kubernetes or Compose secret is mounted as files: ``ALPACA_API_KEY_FILE`` and
``ALPACA_SECRET_KEY_FILE`` name them (a file beats the plain variable, so a rotated secret
reaches a running process: the kubelet rewrites the mounted file, the environment never changes).
Without the ``*_FILE`` variables the keys come from ``ALPACA_API_KEY`` / ``ALPACA_SECRET_KEY``.
The keys never appear in a message, a repr or a log line; messages name the variable and the path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from live.errors import ConfigError

KEY_VARS = ("ALPACA_API_KEY", "ALPACA_SECRET_KEY")


@dataclass(frozen=True)
class AlpacaKeys:
    """A key pair and where it came from (``origin`` names variables or files, never values)."""

    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    origin: str


def _from_file(var: str, env: Mapping[str, str]) -> str | None:
    path = env.get(f"{var}_FILE")
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"{var}_FILE={path} cannot be read ({type(exc).__name__}); mount the secret there "
            f"or unset {var}_FILE to use {var}"
        ) from None
    if not value:
        raise ConfigError(f"{var}_FILE={path} is empty; write the key into it")
    return value


def read_keys(env: Mapping[str, str] | None = None) -> AlpacaKeys:
    """The current key pair (files first, then the environment).

    Raises:
        ConfigError: A key is missing, or a named key file cannot be read or is empty.
    """
    env = os.environ if env is None else env
    values, origins = [], []
    for var in KEY_VARS:
        from_file = _from_file(var, env)
        if from_file is not None:
            values.append(from_file)
            origins.append(f"{var}_FILE={env[f'{var}_FILE']}")
        else:
            values.append(env.get(var, ""))
            origins.append(var)
    if not all(values):
        raise ConfigError(
            "set ALPACA_API_KEY and ALPACA_SECRET_KEY (paper keys by default), or mount them as "
            "files named by ALPACA_API_KEY_FILE and ALPACA_SECRET_KEY_FILE"
        )
    return AlpacaKeys(values[0], values[1], " + ".join(origins))
