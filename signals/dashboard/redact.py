"""No secret reaches the dashboard: every string of the state is scrubbed before it is sent.

The sections are built from allow-listed columns already (:mod:`signals.dashboard.journal_view`,
:mod:`signals.dashboard.outbox_view`), but some allowed columns are free text written by other
code (a platform's error in ``last_error``, a risk reason's detail), and such text can carry a
token (Telegram puts the bot token in every request URL) or a database URL. So, as a second
line, every string goes through ``contracts.logs``' redactor (the values of every secret the
process holds: ``*TOKEN*``, ``*SECRET*``, ``*_KEY``, ``*PASSWORD*``, ``*_FILE`` contents, URL
passwords) and two patterns that catch secrets the process does not hold: a URL's
``user:password@`` and a Telegram bot token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from contracts.logs import REDACTED, SecretRedactor

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")
_BOT_TOKEN = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}\b")


class Scrubber:
    """Scrubs strings (and every string nested in dicts and lists) of secrets."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.redactor = SecretRedactor(environ)

    def refresh(self) -> None:
        """Pick up secrets the process holds now (a rotated token, a new ``*_FILE``)."""
        self.redactor.refresh()

    def text(self, value: str) -> str:
        value = self.redactor.scrub(value)
        value = _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}@", value)
        return _BOT_TOKEN.sub(REDACTED, value)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value
