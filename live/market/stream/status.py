"""The stream's status file: ``<home>/stream/status.json``, written atomically, read by anyone.

``alpaca-improved stream run`` rewrites it every few seconds (temp file, fsync, rename: a reader
never sees half a file) with its pid, host, feeds' health, symbols, lag, gap counts and what the
lake writer wrote. ``stream status`` reads it and says whether that writer is still alive: a
``running`` file whose pid is dead is a stream that was killed, not one that is streaming.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.procs import pid_alive

STATUS_FILE = "status.json"


def status_path(home: Path) -> Path:
    """``<home>/stream/status.json``."""
    return Path(home) / "stream" / STATUS_FILE


def write_status(home: Path, payload: dict[str, Any]) -> Path:
    """Replace the status file atomically with ``payload`` (JSON)."""
    path = status_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{STATUS_FILE}.tmp-{os.getpid()}")
    data = json.dumps(payload, indent=1, default=str, sort_keys=True).encode()
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_status(home: Path) -> dict[str, Any] | None:
    """The last status written (None when no stream has run on ``home``).

    Raises:
        ValueError: the file is not JSON (the message names it and the fix).
    """
    path = status_path(home)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"stream status {path} is not JSON ({exc.msg}); delete it, the next "
            "`alpaca-improved stream run` writes a new one"
        ) from None
    if not isinstance(payload, dict):
        raise ValueError(f"stream status {path} is not a JSON object; delete it")
    return payload


def writer_state(payload: dict[str, Any]) -> tuple[bool | None, str]:
    """(alive, one line) for the writer that wrote ``payload``; alive None = cannot tell here."""
    pid, host = payload.get("pid"), payload.get("host")
    updated = payload.get("updated_at", "?")
    if not payload.get("running"):
        return False, f"stream stopped (pid {pid}, last update {updated}): {payload.get('stop')}"
    if host and host != socket.gethostname():
        return None, f"stream on host {host} (pid {pid}), last update {updated}: not checkable here"
    if isinstance(pid, int) and pid_alive(pid):
        return True, f"stream running (pid {pid}), last update {updated}"
    return False, (
        f"stream NOT running: its writer (pid {pid}) is dead; the last update was {updated} and "
        "it did not shut down cleanly. Start it again with `alpaca-improved stream run` (it "
        "continues today's partitions)"
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
