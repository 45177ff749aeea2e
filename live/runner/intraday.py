"""Minute decisions' bookkeeping: their keys, the last minute decided, bar-to-decision latency,
which deployments decide on minutes, and the send window of their orders.

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
from live.deployments.active_set import DeploymentSet
from live.deployments.manifests import Deployment
from live.journal import orders as jo
from live.orders.liquidate import FLATTEN_TAG
from strategies.models import MINUTE

KEEP = 10_000  # latency samples kept (a session is 390 minutes)


def minute_key(minute: datetime) -> str:
    """The decision key of the bar starting at ``minute``: its close, ``YYYY-MM-DD HH:MM`` New
    York (the 09:30 bar decides under ``... 09:31``)."""
    return f"{(minute + MINUTE).astimezone(NEW_YORK):%Y-%m-%d %H:%M}"


class MinuteDecisions:
    """Owns the newest minute decided on, the latency samples, which deployments decide on
    minutes, and their orders' send window.

    Args:
        deployments: The active deployments.
        market_now: The market's time now (the send window's clock).
        notify: The notifier's ``notify(kind, message, level)``.
        perf: The real-time counter latencies are measured on.
    """

    def __init__(
        self, deployments: DeploymentSet, market_now: Callable[[], datetime],
        notify: Callable[..., None], perf: Callable[[], float] = time.perf_counter,
    ) -> None:  # fmt: skip
        self.active, self.market_now, self.notify, self.perf = deployments, market_now, notify, perf
        self.last: datetime | None = None  # start of the newest minute decided (or skipped)
        self.latencies: deque[float] = deque(maxlen=KEEP)  # seconds, bar arrival -> commit
        self.decisions = 0
        self._idle: set[str] = set()  # "1m" deployments already named as idle (lake)

    def deployments(self) -> list[Deployment]:
        """The active deployments that decide on minute bars."""
        return [d for d in self.active.active.values() if d.strategy.timeframe == "1m"]

    def too_late(self, row: jo.OrderRow) -> str | None:
        """A "1m" deployment's order is sent within the minute after its bar closed or never:
        once a newer bar has closed the decision is stale (say, after a crash and restart)."""
        dep = self.active.active.get(row.deployment_id)
        if dep is None or dep.strategy.timeframe != "1m" or row.intent.tag == FLATTEN_TAG:
            return None
        now = self.market_now()
        if row.decided_at + MINUTE > now:
            return None
        decided = row.decided_at.astimezone(NEW_YORK)
        return (
            f"decided on the bar closing {decided:%H:%M} New York; a newer bar closed since "
            f"({now.astimezone(NEW_YORK):%H:%M:%S}): a minute decision is sent in its minute"
        )

    def warn_idle(self) -> None:
        """Name once each "1m" deployment, which never decides on the lake's daily bars."""
        for dep in self.deployments():
            if dep.id not in self._idle:
                self._idle.add(dep.id)
                self.notify(
                    "deployment_idle",
                    f"{dep.id}: {dep.strategy.name} decides on minute bars (timeframe 1m); "
                    "with --market-data lake it never decides: run with --market-data stream",
                    "warning",
                )

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
