"""One runner per data root: an exclusive lock that the OS releases when its process dies.

``live run`` takes ``<home>/live/runner.lock`` (``flock``, exclusive, non-blocking) before it
opens the journal or the simulated broker's state, and writes its holder (pid, host, start
time, broker) into the file. A second runner on the same root refuses to start and names that
holder. The kernel drops a ``flock`` when the process exits, however it exits (SIGKILL
included), so a crash never leaves a stale lock. The file stays: deleting a lock file races
with the next locker, and its content tells ``live status`` who ran last.

The lock belongs to the process, as a flock does: a second runner built in the same process
(tests, a replay) shares it.

Scaled out (runners on several hosts sharing one Postgres, one runner per broker account), the
same :class:`RunnerLock` contract is :class:`live.runner.pg_lock.PgAdvisoryLock`, which
:func:`runner_lock` picks when ``ALPACA_IMPROVED_DATABASE_URL`` puts the journal on Postgres:
``SELECT pg_try_advisory_lock(hashtextextended(key, 0))``, keyed by the journal's schema (one
schema per account, ``ALPACA_IMPROVED_JOURNAL_SCHEMA``), on a connection kept open for the
runner's life (the server releases it when that session ends, as the kernel releases a flock),
with the holder upserted into the schema's ``runner_locks`` table under the lock. A refusal
names the holder from that row.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts import paths
from live.errors import LiveError

LOCK_FILE = "runner.lock"
_HELD: dict[Path, list[int]] = {}  # lock path -> [fd, holders in this process]
_GUARD = threading.Lock()


def lock_path(home: Path) -> Path:
    """``<home>/live/runner.lock``."""
    return paths.live_dir(home) / LOCK_FILE


def account_key(broker: str, paper: bool, account_id: str) -> str:
    """The key of the scaled-out, per-account lock: ``alpaca:paper:<account id>``."""
    return f"{broker}:{'paper' if paper else 'live'}:{account_id}"


class RunnerLocked(LiveError):
    """Another live runner holds the lock; the message names it."""


@dataclass(frozen=True, slots=True)
class LockState:
    """What a probe of a lock found: whether a runner holds it now, and the last holder."""

    held: bool
    holder: dict[str, Any] | None

    def describe(self) -> str:
        """``pid 123 on host h, started at ...`` (or ``unknown holder``)."""
        return describe(self.holder)


def describe(holder: dict[str, Any] | None) -> str:
    """A holder as ``pid P on host H, started at T``."""
    if not holder:
        return "an unknown holder (it has not written its details yet)"
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
        f"started at {holder.get('started_at', '?')}"
    )


class RunnerLock(ABC):
    """An exclusive lock a runner holds for its whole life (see the module docstring)."""

    @abstractmethod
    def acquire(self, details: dict[str, Any]) -> None:
        """Take the lock and record ``details`` as its holder.

        Raises:
            RunnerLocked: Naming the current holder.
        """

    @abstractmethod
    def release(self) -> None:
        """Give the lock back (a crash releases it too)."""

    @abstractmethod
    def probe(self) -> LockState:
        """Whether someone holds the lock now, and the last recorded holder; takes nothing."""

    @abstractmethod
    def check(self) -> None:
        """Raise RunnerLocked if the held lock was lost (a database session can end under us)."""


class FileLock(RunnerLock):
    """``flock`` on a file (``<home>/live/runner.lock`` for a data root).

    Args:
        path: The lock file (created with its directory on :meth:`acquire` only).
        wait_s: How long a contended acquisition retries before refusing (a ``live status``
            probe holds a shared lock for microseconds; a runner holds it for good).
    """

    def __init__(self, path: Path, wait_s: float = 1.0) -> None:
        self.path = path.absolute()
        self.wait_s = wait_s
        self._mine = False

    def acquire(self, details: dict[str, Any]) -> None:
        with _GUARD:
            held = _HELD.get(self.path)
            if held is not None:  # this process holds it already: share it
                held[1] += 1
                self._mine = True
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            deadline = time.monotonic() + self.wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        os.close(fd)
                        raise RunnerLocked(self._refusal()) from None
                    time.sleep(0.02)
            data = json.dumps(details, sort_keys=True).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            os.fsync(fd)
            _HELD[self.path] = [fd, 1]
            self._mine = True

    def _refusal(self) -> str:
        home = self.path.parent.parent
        holder = read_holder(self.path)
        pid = holder.get("pid", "?") if holder else "?"
        return (
            f"another live runner holds {self.path}: {describe(holder)}. One runner per data "
            f"root: stop it first (alpaca-improved live halt --home {home}, then kill -TERM "
            f"{pid}), or run this one with another --home"
        )

    def release(self) -> None:
        with _GUARD:
            if not self._mine:
                return
            self._mine = False
            held = _HELD.get(self.path)
            if held is None:
                return
            held[1] -= 1
            if held[1] == 0:
                del _HELD[self.path]
                os.close(held[0])  # closing the descriptor drops the flock

    def check(self) -> None:
        return None  # the kernel keeps a flock as long as the process lives

    def probe(self) -> LockState:
        if not self.path.is_file():
            return LockState(False, None)
        holder = read_holder(self.path)
        if self.path in _HELD:
            return LockState(True, holder)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return LockState(True, holder)
        finally:
            os.close(fd)  # also drops the shared lock if it was taken
        return LockState(False, holder)


def runner_lock(home: Path) -> RunnerLock:
    """The lock of ``home``'s journal: the Postgres advisory lock of its schema when the journal
    is on Postgres, else the data root's :class:`FileLock`."""
    from live.journal.pg import configured

    pg = configured()
    if pg is None:
        return FileLock(lock_path(home))
    from live.runner.pg_lock import PgAdvisoryLock

    return PgAdvisoryLock(*pg)


def read_holder(path: Path) -> dict[str, Any] | None:
    """The holder details recorded in a lock file (None when absent or unreadable)."""
    try:
        data = json.loads(path.read_bytes() or b"null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def holder_details(broker: str, now: datetime | None = None) -> dict[str, Any]:
    """What a runner records about itself in the lock."""
    started = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    return {"pid": os.getpid(), "host": socket.gethostname(), "started_at": started,
            "broker": broker}  # fmt: skip
