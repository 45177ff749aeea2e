"""The kill switch that needs no journal: the halt file ``<home>/live/HALT``.

``live halt`` writes this file (atomically: temp file, fsync, rename) before it queues the
command in the journal, and the runner looks for it first: at the top of every cycle, before it
touches the journal. So a halt works when the journal is damaged, locked or gone. While the
file exists the runner is HALTED (reason ``halt_file``) and it cancels open orders once per
halt file; only ``live resume`` removes it. A runner that starts while the file exists stays
HALTED from its first cycle.

The ``live halt`` / ``flatten`` / ``resume`` answers come from here too: each says whether a
runner holds the data root now (:mod:`live.runner.lock`) and, when none does, its last heartbeat
and what the next runner to start will do with the command.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts import paths
from live.errors import ConfigError
from live.journal.pg import (
    JournalUnavailable,
    configured,
    journal_exists,
    journal_where,
    open_journal,
)
from live.journal.store import JournalDamaged
from live.runner.lock import LockState, describe, runner_lock

HALT_FILE = "HALT"


def halt_path(home: Path) -> Path:
    """``<home>/live/HALT``."""
    return paths.live_dir(home) / HALT_FILE


def write_halt(home: Path, reason: str = "live halt") -> Path:
    """Write the halt file (``<home>/live`` must exist); returns its path."""
    path = halt_path(home)
    body = {
        "created_at": datetime.now(UTC).isoformat(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "reason": reason,
    }
    tmp = path.with_name(f".{HALT_FILE}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(body, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def read_halt(home: Path) -> dict[str, Any] | None:
    """The halt file's content, ``{}`` if it exists but cannot be parsed, None if absent."""
    path = halt_path(home)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}  # there, but unreadable: still a halt
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def clear_halt(home: Path) -> bool:
    """Remove the halt file; True if there was one."""
    try:
        halt_path(home).unlink()
    except FileNotFoundError:
        return False
    return True


# -- the control commands' answers (``live halt/flatten/resume``) -------------------------------
def heartbeat(home: Path) -> str:
    """``last heartbeat <its last cycle>, <last holder>`` from the journal (read-only) and the
    lock file, or what is known when either is missing or damaged."""
    try:
        journal = open_journal(home, readonly=True)
    except FileNotFoundError:
        beat = "none: no journal"
    except JournalDamaged:
        beat = "unknown: the journal is damaged"
    else:
        try:
            cycle = journal.last_cycle()
        except sqlite3.DatabaseError as exc:
            cycle, beat = None, f"unknown: the journal cannot be read ({exc})"
        else:
            beat = "none: no cycle ran"
        finally:
            journal.close()
        if cycle is not None:
            beat = str(cycle.get("finished_at") or cycle.get("started_at"))
    holder = runner_lock(home).probe().holder
    last = f"; last runner {describe(holder)}" if holder else ""
    return f"last heartbeat {beat}{last}"


def running(home: Path) -> LockState:
    """Whether a runner holds the data root now (probing takes nothing)."""
    return runner_lock(home).probe()


def _queue(home: Path, name: str) -> int:
    journal = open_journal(home)
    try:
        return journal.enqueue_command(name, datetime.now(UTC))
    finally:
        journal.close()


def halt(home: Path) -> str:
    """The kill switch: the halt file first (works without a journal), then the journaled
    command (its history); returns what happened and what will happen."""
    if not paths.live_dir(home).is_dir():
        if configured() is None:
            raise ConfigError(f"no live runner state in {paths.live_dir(home)}: is --home right?")
        paths.live_dir(home).mkdir(parents=True)  # the journal is on Postgres: halt file here too
    path = write_halt(home)
    queued, note = "", ""
    try:
        if journal_exists(home):
            try:
                queued = f" and command {_queue(home, 'halt')} queued"
            except JournalDamaged as exc:
                note = f"; the command could not be queued in the journal: {exc}"
        state = running(home)
    except JournalUnavailable as exc:  # the Postgres journal: only this host's runner halts
        raise JournalUnavailable(
            f"halt file {path} written (a runner on this host reads it), but the command was "
            f"not queued: {exc}"
        ) from None
    if state.held:
        return (
            f"halted: halt file {path} written{queued}; the running runner ({state.describe()}) "
            "is HALTED at its next cycle and cancels its open orders, until "
            f"`alpaca-improved live resume`{note}"
        )
    return (
        f"no live runner is running on {home} ({heartbeat(home)}); halt file {path} "
        f"written{queued}: the next runner to start is HALTED from its first cycle (it "
        f"reconciles with the broker but sends nothing) until `alpaca-improved live resume`{note}"
    )


def flatten(home: Path) -> str:
    """Queue the emergency liquidation; a damaged journal writes the halt file instead."""
    if not journal_exists(home):
        raise ConfigError(f"no journal at {journal_where(home)}: no runner has traded on {home}")
    try:
        cid = _queue(home, "flatten")
    except JournalDamaged as exc:
        path = write_halt(home, "flatten refused: journal damaged")
        raise ConfigError(
            f"flatten was not queued; halt file {path} written instead: {exc}"
        ) from exc
    state = running(home)
    if state.held:
        return (
            f"flatten queued (command {cid}); the running runner ({state.describe()}) cancels "
            "open orders and closes every position at its next cycle, then stays HALTED"
        )
    return (
        f"flatten queued (command {cid}), but no live runner is running on {home} "
        f"({heartbeat(home)}): nothing is closed now; the next runner to start reconciles with "
        "the broker, then cancels open orders and closes every position at its first cycle "
        "and stays HALTED"
    )


def resume(home: Path) -> str:
    """Remove the halt file and queue ``resume`` (clears every halt reason)."""
    cid = _queue(home, "resume") if journal_exists(home) else None  # JournalDamaged: nothing done
    removed = clear_halt(home)
    what = f"resume queued (command {cid})" if cid is not None else "no journal: nothing queued"
    what += f"; halt file {halt_path(home)} removed" if removed else ""
    state = running(home)
    if state.held:
        return (
            f"{what}; the running runner ({state.describe()}) clears every halt at its next cycle"
        )
    return (
        f"{what}; no live runner is running on {home} ({heartbeat(home)}): the next runner to "
        "start clears every halt reason at its first cycle"
    )
