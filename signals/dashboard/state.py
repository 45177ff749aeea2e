"""The dashboard's state: every section in one JSON document, rebuilt only when a source changed.

:meth:`StateCache.current` is called by every request and every live-refresh stream, at most
about once a second each. It first computes a cheap version of the sources (the journal's and
the signals database's file stats, or their largest ids on Postgres, the halt file, the runner
lock, and a 10-second tick so the lake and anything a version misses are re-read at that
pace); only when that version moved does it rebuild the state, and the state's digest (its
canonical JSON's SHA-256) tells a stream whether anything visible changed. One rebuild serves
every client, and one version probe serves every client that polls within half a second
(on Postgres a probe is a query on one kept read-only session).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from live.runner.control import halt_path
from signals.dashboard.journal_view import (
    JournalHandle,
    file_version,
    journal_version,
    read_journal,
    runner,
)
from signals.dashboard.outbox_view import OutboxCounts, outbox_version, read_outbox
from signals.dashboard.pnl_view import LakeReader, read_pnl
from signals.dashboard.redact import Scrubber

log = logging.getLogger(__name__)
TICK_S = 10.0
PROBE_EVERY_S = 0.5  # one version probe serves every client polling within this
_JOURNAL_SECTIONS = ("deployments", "positions", "open_orders", "fills", "risk", "limits")


_logged: dict[str, str] = {}  # source -> the last problem logged (logged once, not per poll)


def _guarded(what: str, fn: Callable[[], Any], fallback: Any) -> Any:
    """``fn()``, or ``fallback`` with a ``problem`` naming the failure (the page shows it)."""
    try:
        result = fn()
    except Exception as exc:  # a display boundary: one broken source must not blank the page
        problem = f"cannot read the {what}: {type(exc).__name__}: {exc}"
        if _logged.get(what) != problem:
            log.warning("dashboard: %s", problem)
            _logged[what] = problem
        return {**fallback, "problem": problem} if isinstance(fallback, dict) else problem
    _logged.pop(what, None)
    return result


class StateCache:
    """Builds, caches and versions the dashboard state of one data root and signals database.

    Args:
        home: The data root (journal, halt file, lake).
        engine: The signals database (:func:`signals.db.make_engine`), read-only here.
        title: The page title, part of the state.
        environ: Where the secrets to scrub are read from (default ``os.environ``).
        tick_s: The longest a state is served without a rebuild (the lake's refresh pace).
    """

    def __init__(
        self,
        home: Path,
        engine: Engine,
        title: str,
        environ: Mapping[str, str] | None = None,
        tick_s: float = TICK_S,
    ) -> None:
        self.home, self.engine, self.title, self.tick_s = home, engine, title, tick_s
        self.journal = JournalHandle(home)
        self.lake = LakeReader(home)
        self.outbox_counts = OutboxCounts()
        self.scrub = Scrubber(environ)
        self._lock = threading.Lock()
        self._version: Any = object()
        self._digest = ""
        self._state: dict[str, Any] = {}
        self.rebuilds = 0
        self._built_at, self._build_s = -math.inf, 0.0
        self._probe: tuple[float, Any] = (-math.inf, None)

    def version(self) -> Any:
        """The cheap version of every source (see the module docstring)."""
        return (
            _guarded("journal", lambda: journal_version(self.journal), ()),
            _guarded("outbox", lambda: outbox_version(self.engine), ()),
            file_version(halt_path(self.home))[0],
            _guarded("runner lock", lambda: runner(self.home)["running"], ()),
            int(time.monotonic() // self.tick_s),
        )

    def build(self) -> dict[str, Any]:
        """Every section, scrubbed (``generated_at`` excluded: it is not a change)."""
        self.scrub.refresh()
        journal = _guarded("journal", lambda: read_journal(self.journal), {"available": False})
        deployments = journal.get("deployments", [])
        state = {
            "title": self.title,
            "runner": _guarded("runner lock", lambda: runner(self.home), {"running": None}),
            "journal": {k: journal.get(k) for k in ("available", "where", "problem")},
            **{k: journal.get(k) for k in _JOURNAL_SECTIONS},
            "pnl": _guarded(
                "lake", lambda: {"rows": read_pnl(self.lake, deployments)}, {"rows": []}
            ),
            "outbox": _guarded(
                "outbox", lambda: read_outbox(self.engine, self.outbox_counts), {"total": None}
            ),
        }
        return self.scrub(state)

    def current(self) -> tuple[str, dict[str, Any]]:
        """``(digest, state)``, rebuilt when the sources' version moved."""
        with self._lock:
            now = time.monotonic()
            if now - self._probe[0] >= PROBE_EVERY_S:
                self._probe = (now, self.version())
            version = self._probe[1]
            # while the sources change every second (a broadcast), rebuild at most every 4
            # build times: the dashboard never takes more than ~1/5 of a core
            due = time.monotonic() - self._built_at >= 4 * self._build_s
            if version != self._version and due:
                started = time.monotonic()
                state = self.build()
                text = json.dumps(state, sort_keys=True, default=str)
                self._digest = hashlib.sha256(text.encode()).hexdigest()[:16]
                self._state, self._version = state, version
                self.rebuilds += 1
                self._built_at = time.monotonic()
                self._build_s = self._built_at - started
            at = datetime.now(UTC).isoformat(timespec="seconds")
            return self._digest, {**self._state, "version": self._digest, "generated_at": at}
