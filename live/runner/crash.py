"""Injected crash points for kill -9 tests: ``ALPACA_IMPROVED_CRASH_AT=<point>`` SIGKILLs the
runner when it reaches that point (``before_send``, ``after_send_before_ack``,
``after_fill_before_position``, ``mid_reconciliation``). Off unless the variable is set."""

from __future__ import annotations

import os
import signal

POINTS = (
    "before_send",
    "after_send_before_ack",
    "after_fill_before_position",
    "mid_reconciliation",
)
ENV = "ALPACA_IMPROVED_CRASH_AT"


class CrashPoints:
    """Calls ``SIGKILL`` on this process at the configured point (read once at start)."""

    def __init__(self, point: str | None = None) -> None:
        self.point = point if point is not None else os.environ.get(ENV, "")
        if self.point and self.point not in POINTS:
            raise ValueError(f"{ENV}={self.point!r}; use one of {POINTS}")

    def __call__(self, point: str) -> None:
        """Die here if ``point`` is the configured one."""
        if point == self.point:
            os.kill(os.getpid(), signal.SIGKILL)
