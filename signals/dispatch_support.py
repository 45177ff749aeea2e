"""The dispatcher's small parts: its clock, the crash-test kill points, the payload hash it
records with each send, and the one-dispatcher-per-SQLite-home file lock."""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import Engine

from signals.errors import SignalsError
from signals.interfaces import OutboundMessage
from signals.model import payload_hash

KILL_ENV = "ALPACA_IMPROVED_SIGNALS_KILL_AT"
KILL_POINTS = ("after_claim", "after_send", "after_record")


class Clock(Protocol):
    """The dispatcher's only view of time (tests pass a simulated one)."""

    def now(self) -> dt.datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock UTC time and ``asyncio.sleep``."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class KillPoints:
    """The crash-test knob (module docstring): SIGKILL at the N-th pass of one point."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        spec = (os.environ if environ is None else environ).get(KILL_ENV, "")
        point, _, count = spec.partition(":")
        if (point and point not in KILL_POINTS) or not (count or "1").isdigit():
            raise SignalsError(f"{KILL_ENV}={spec!r}: use one of {KILL_POINTS}, optionally :N")
        self.point, self.left = point, int(count or 1)

    def hit(self, name: str) -> None:
        if name == self.point:
            self.left -= 1
            if self.left <= 0:
                os.kill(os.getpid(), signal.SIGKILL)


def message_hash(msg: OutboundMessage) -> str:
    """The payload hash recorded with a send: text, buttons, address, and the image bytes."""
    payload = {
        "channel": msg.channel.value, "target_kind": msg.target_kind.value, "target": msg.target,
        "text": msg.text, "buttons": [[b.label, b.callback_data, b.url] for b in msg.buttons],
    }  # fmt: skip
    return payload_hash(payload, msg.image)


def sqlite_dispatcher_lock(engine: Engine) -> int | None:
    """Hold ``<database>.dispatcher.lock`` (flock) for this process, or fail in one line when
    another dispatcher holds it; None for an in-memory database. Released at close or exit."""
    db = engine.url.database or ""
    if not db or db == ":memory:":
        return None
    path = Path(f"{db}.dispatcher.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SignalsError(
            f"another dispatcher is running on {db} (lock {path}); stop it first, or set "
            "ALPACA_IMPROVED_DATABASE_URL to run several dispatchers on Postgres"
        ) from None
    return fd
