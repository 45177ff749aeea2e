"""Client-side request budget and transient-only retries with exponential backoff and full jitter.

Vendor clients retry on their own (alpaca-py: fixed 3 s sleeps on 429/504 that ignore
``X-Ratelimit-Reset``; polygon-api-client: urllib3 retries, no read timeout at all), so our
sources switch those off and own the policy here: one place that honours the vendor's rate-limit
headers, bounds every wait, and never retries an error a retry cannot fix. Time is injected
(``Runtime``) so tests run the real policy without real sleeping.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from alpaca_improved_pipelines.sources.vendors.errors import TransientVendorError
from contracts.budget import RequestWindow

T = TypeVar("T")
WINDOW_S = 60.0


@dataclass
class Runtime:
    """The clock, sleep and randomness the HTTP layer uses (tests pass fakes)."""

    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)


def _num(headers: Mapping[str, str], name: str) -> float | None:
    for key, value in headers.items():
        if key.lower() == name:
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


class RateBudget:
    """A sliding one-minute request budget, tightened by the vendor's ``X-Ratelimit-*`` headers.

    Args:
        per_minute: Our own ceiling on requests per rolling minute (None: only the headers).
        runtime: Clock and sleep.
        max_wait_s: Longest single wait for a reset; a reset further away (clock skew or a
            hostile header) is capped at this.
        reserve: Requests to keep in hand: wait for the reset once ``Remaining`` drops to it.
        shared: The per-minute window shared by every process on the key
            (:func:`contracts.budget.request_window`, Redis when ``ALPACA_IMPROVED_BUDGET_URL``
            is set); None: this instance's own window.
    """

    def __init__(
        self, per_minute: int | None, runtime: Runtime, max_wait_s: float = 65.0, reserve: int = 0,
        shared: RequestWindow | None = None,
    ) -> None:  # fmt: skip
        self.shared = shared
        self.per_minute = per_minute
        self.runtime = runtime
        self.max_wait_s = max_wait_s
        self.reserve = reserve
        self.remaining: float | None = None
        self.reset_at: float | None = None
        self.limit: float | None = None
        self.sent: deque[float] = deque()
        self.waited_s = 0.0
        self._lock = threading.Lock()

    def _wait(self, seconds: float) -> None:
        seconds = min(max(seconds, 0.0), self.max_wait_s)
        if seconds > 0:
            self.waited_s += seconds
            self.runtime.sleep(seconds)

    def acquire(self) -> None:
        """Block until one more request fits the budget, then count it."""
        with self._lock:
            now = self.runtime.clock()
            if (
                self.remaining is not None
                and self.remaining <= self.reserve
                and self.reset_at is not None
                and self.reset_at > now
            ):
                self._wait(self.reset_at - now)
                self.remaining = None
            if self.shared is not None:
                while (pause := self.shared.try_take()) > 0:
                    self._wait(pause)
                return
            now = self.runtime.clock()
            while self.sent and self.sent[0] <= now - WINDOW_S:
                self.sent.popleft()
            if self.per_minute and len(self.sent) >= self.per_minute:
                self._wait(self.sent[0] + WINDOW_S - now)
                self.sent.popleft()
            self.sent.append(self.runtime.clock())

    def observe(self, headers: Mapping[str, str]) -> None:
        """Record ``X-Ratelimit-Limit/Remaining/Reset`` (reset in epoch seconds) from a response."""
        remaining = _num(headers, "x-ratelimit-remaining")
        if remaining is None:
            return
        with self._lock:
            self.remaining = remaining
            self.limit = _num(headers, "x-ratelimit-limit")
            self.reset_at = _num(headers, "x-ratelimit-reset")

    def retry_after(self, headers: Mapping[str, str], status: int) -> float | None:
        """Seconds the vendor asked us to wait before retrying, bounded, or None.

        ``Retry-After`` counts for any status; the ``X-Ratelimit-Reset`` time only for a 429
        (on other answers it is just the end of the current budget window).
        """
        after = _num(headers, "retry-after")
        if (
            after is None
            and status == 429
            and (reset := _num(headers, "x-ratelimit-reset")) is not None
        ):
            after = reset - self.runtime.clock()
        if after is None:
            return None
        return min(max(after, 0.0), self.max_wait_s)


@dataclass(frozen=True)
class RetryPolicy:
    """Transient-only retries: exponential backoff with full jitter, bounded in count and time.

    Attributes:
        attempts: Total tries per call (1 = no retry).
        base_s: First backoff ceiling; attempt ``n`` waits ``uniform(0, min(max_s, base_s*2**n))``
            or what the vendor asked for, whichever is longer.
        max_s: Largest single backoff.
        deadline_s: Give up (raise the last error) rather than wait past this many seconds.
    """

    attempts: int = 4
    base_s: float = 0.5
    max_s: float = 30.0
    deadline_s: float = 300.0

    def delay(self, attempt: int, err: TransientVendorError, rng: random.Random) -> float:
        """How long to wait after failed attempt number ``attempt`` (0-based)."""
        jitter = rng.uniform(0.0, min(self.max_s, self.base_s * 2.0**attempt))
        return max(jitter, err.retry_after or 0.0)

    def run(
        self,
        fn: Callable[[], T],
        runtime: Runtime,
        on_retry: Callable[[int, float, TransientVendorError], None] | None = None,
    ) -> T:
        """Call ``fn``; retry only ``TransientVendorError``; anything else propagates at once."""
        start = runtime.clock()
        for attempt in range(max(self.attempts, 1)):
            try:
                return fn()
            except TransientVendorError as err:
                wait = self.delay(attempt, err, runtime.rng)
                last = attempt + 1 >= self.attempts
                if last or runtime.clock() - start + wait > self.deadline_s:
                    raise TransientVendorError(
                        f"{err} (gave up after {attempt + 1} attempts)",
                        status=err.status,
                        retry_after=err.retry_after,
                    ) from err
                if on_retry is not None:
                    on_retry(attempt, wait, err)
                runtime.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
