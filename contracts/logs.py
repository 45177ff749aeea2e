"""Log lines every process writes the same way: text for a terminal, JSON for a log pipeline.

``ALPACA_IMPROVED_LOG_FORMAT=json`` switches every process (the live runner, ``stream run``, the
Dagster code location's CLI) to one JSON object per line (python-json-logger) with the fields a
log pipeline joins on: ``run_id`` (the Dagster run, from ``DAGSTER_RUN_ID``), ``deployment``,
``client_order_id`` and ``cycle`` when the code logging knows them (:func:`log_context`, or
``extra=``). Text is the default.

Whatever the format, a :class:`SecretRedactor` on the handler replaces the value of every secret
the process holds (variables named like ``*_KEY``, ``*SECRET*``, ``*TOKEN*``, ``*PASSWORD*``,
``*_URL`` passwords, and the contents of ``*_FILE`` secrets) with ``***``: a secret that slips
into a message, an exception or an ``extra`` field never reaches the log.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from pythonjsonlogger.json import JsonFormatter

FORMAT_VAR = "ALPACA_IMPROVED_LOG_FORMAT"
CONTEXT_FIELDS = ("run_id", "deployment", "client_order_id", "cycle")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_SECRET_NAME = re.compile(r"(^|_)(KEY|SECRET|TOKEN|PASSWORD|PASS)(_|$)|SECRET|TOKEN|PASSWORD")
_MIN_SECRET = 6  # shorter values (e.g. "1") would redact ordinary text
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "log_context", default=MappingProxyType({})
)
REDACTED = "***"


def secret_values(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The secret values this process holds (see the module docstring)."""
    env = os.environ if env is None else env
    found: set[str] = set()
    for name, value in env.items():
        upper = name.upper()
        if upper.endswith("_FILE") and _SECRET_NAME.search(upper.removesuffix("_FILE")):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                found.add(Path(value).read_text(encoding="utf-8").strip())
        elif _SECRET_NAME.search(upper):
            found.add(value)
        elif upper.endswith(("_URL", "_URI")) and "@" in value:
            with contextlib.suppress(ValueError):
                password = urlsplit(value).password
                if password:
                    found.add(password)
    return frozenset(v for v in found if len(v) >= _MIN_SECRET)


class SecretRedactor(logging.Filter):
    """Replaces every secret value in a record's message, arguments and extra fields.

    The values are read when the filter is made and again by :meth:`refresh` (after a key
    rotation the old and the new key are both redacted).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.env = env
        self.secrets: frozenset[str] = secret_values(env)

    def refresh(self) -> None:
        """Add the secrets the process holds now (rotated keys) to the known ones."""
        self.secrets = self.secrets | secret_values(self.env)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg = self.scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and key not in ("msg", "name", "levelname", "pathname"):
                setattr(record, key, self.scrub(value))
        return True


class ContextFilter(logging.Filter):
    """Adds the :func:`log_context` fields (and ``run_id`` from ``DAGSTER_RUN_ID``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = {"run_id": os.environ.get("DAGSTER_RUN_ID"), **_context.get()}
        for key in CONTEXT_FIELDS:
            if getattr(record, key, None) is None and fields.get(key) is not None:
                setattr(record, key, fields[key])
        return True


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Within the block, every log line carries ``fields`` (e.g. ``deployment=``)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def json_formatter() -> logging.Formatter:
    """One JSON object per line: time, level, logger, message and the context fields."""
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",  # ISO 8601 in UTC
    )


def configure_logging(
    level: int = logging.INFO,
    env: Mapping[str, str] | None = None,
    stream: Any = None,
) -> logging.Handler:
    """Install one handler on the root logger: text or JSON (``ALPACA_IMPROVED_LOG_FORMAT``),
    with the context fields and the secret redactor. Replaces handlers this function installed
    before; leaves other handlers (pytest's, Dagster's) alone.

    Raises:
        ValueError: ``ALPACA_IMPROVED_LOG_FORMAT`` is neither ``text`` nor ``json``.
    """
    env = os.environ if env is None else env
    fmt = env.get(FORMAT_VAR, "text").strip().lower() or "text"
    if fmt not in ("text", "json"):
        raise ValueError(f"{FORMAT_VAR}={fmt!r} is not a log format; use text or json")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name("alpaca_improved")
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    handler.addFilter(SecretRedactor(env))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "alpaca_improved"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
