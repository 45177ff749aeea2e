"""Minute decisions' bookkeeping: their keys, the last minute decided, bar-to-decision latency.

A "1m" deployment decides once per (session, minute): the decision is journaled under
:func:`minute_key` (the New York time of the bar's close), which also salts its client order ids,
so a restart finds the minute already decided and re-derives the same ids. Latency is measured
in real time (``time.perf_counter``) from the arrival of the minute's last bar to the decision's
commit, whatever clock the runner runs on: it is what the runner costs, not market time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np

from live.clock import NEW_YORK
from strategies.models import MINUTE

KEEP = 10_000  # latency samples kept (a session is 390 minutes)


def minute_key(minute: datetime) -> str:
    """The decision key of the bar starting at ``minute``: its close, ``YYYY-MM-DD HH:MM`` New
    York (the 09:30 bar decides under ``... 09:31``)."""
    return f"{(minute + MINUTE).astimezone(NEW_YORK):%Y-%m-%d %H:%M}"


class MinuteDecisions:
    """Owns the newest minute decided on and the latency samples.

    Args:
        perf: The real-time counter latencies are measured on.
    """

    def __init__(self, perf: Callable[[], float] = time.perf_counter) -> None:
        self.perf = perf
        self.last: datetime | None = None  # start of the newest minute decided (or skipped)
        self.latencies: deque[float] = deque(maxlen=KEEP)  # seconds, bar arrival -> commit
        self.decisions = 0

    def due(self, minute: datetime | None) -> bool:
        """Whether ``minute`` is newer than the last minute handled."""
        return minute is not None and (self.last is None or minute > self.last)

    def done(self, minute: datetime, arrived: float | None) -> None:
        """``minute`` was decided (its decision committed now); ``arrived``: its bar's arrival."""
        self.last = minute
        self.decisions += 1
        if arrived is not None:
            self.latencies.append(max(self.perf() - arrived, 0.0))

    def stats(self) -> dict[str, Any]:
        """Decisions, the last minute and latency p50/p99/max in milliseconds."""
        out: dict[str, Any] = {
            "minute_decisions": self.decisions,
            "last_minute": minute_key(self.last) if self.last is not None else None,
        }
        if self.latencies:
            ms = np.asarray(self.latencies) * 1000.0
            p50, p99 = np.percentile(ms, [50, 99])
            out["latency_ms"] = {
                "p50": round(float(p50), 3), "p99": round(float(p99), 3),
                "max": round(float(ms.max()), 3), "n": int(ms.size),
            }  # fmt: skip
        return out
