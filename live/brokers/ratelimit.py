"""A token bucket on the :class:`~live.clock.Clock` (Alpaca: 200 requests/minute/account)."""

from __future__ import annotations

import threading
from collections import deque

from contracts.budget import RequestWindow
from live.clock import Clock


class TokenBucket:
    """``per_minute`` tokens per 60 s, bursting up to ``burst`` (default: the per-minute budget).

    Over any 60 s window at most ``burst + per_minute`` tokens can be taken; with the default
    ``burst`` the steady rate is ``per_minute`` and the first minute may use up to the budget.
    """

    def __init__(self, per_minute: float, clock: Clock, burst: float | None = None) -> None:
        if per_minute <= 0:
            raise ValueError(f"per_minute must be > 0, got {per_minute}")
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else per_minute)
        self.clock = clock
        self._tokens = self.capacity
        self._at = clock.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take ``tokens`` if available now."""
        with self._lock:
            self._refill()
            if self._tokens + 1e-9 >= tokens:
                self._tokens -= tokens
                return True
            return False

    def wait_time(self, tokens: float = 1.0) -> float:
        """Seconds until ``tokens`` are available (0 if now)."""
        with self._lock:
            self._refill()
            return max(0.0, (tokens - self._tokens) / self.rate)

    def acquire(self, tokens: float = 1.0, max_wait: float = 120.0) -> None:
        """Block on the clock until ``tokens`` are taken (TimeoutError after ``max_wait``)."""
        waited = 0.0
        while not self.try_acquire(tokens):
            pause = min(max(self.wait_time(tokens), 0.001), max_wait - waited)
            if pause <= 0:
                raise TimeoutError(f"rate limiter: no token within {max_wait:.0f}s")
            self.clock.sleep(pause)
            waited += pause

    def drain(self) -> None:
        """Empty the bucket (after the broker said 429: we were over its budget)."""
        with self._lock:
            self._refill()
            self._tokens = 0.0


class SlidingWindow:
    """At most ``limit`` acquisitions in any ``window`` seconds (exact, unlike a token bucket,
    which may allow up to twice its rate across a window boundary).

    ``shared`` (a :class:`contracts.budget.RequestWindow` in Redis, from
    ``ALPACA_IMPROVED_BUDGET_URL``) makes the window the account's, shared by every process on the
    key; waits still go through ``clock.sleep``.
    """

    def __init__(
        self, limit: int, clock: Clock, window: float = 60.0, shared: RequestWindow | None = None
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit, self.window, self.clock, self.shared = limit, window, clock, shared
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def wait_time(self) -> float:
        """Seconds until one more acquisition fits the window."""
        with self._lock:
            now = self.clock.monotonic()
            while self._sent and self._sent[0] <= now - self.window:
                self._sent.popleft()
            return 0.0 if len(self._sent) < self.limit else self._sent[0] + self.window - now

    def acquire(self, max_wait: float = 120.0) -> None:
        """Block on the clock until the window has room (TimeoutError after ``max_wait``)."""
        waited = 0.0
        if self.shared is not None:  # the shared window counts the request when it fits
            while (pause := self.shared.try_take()) > 0:
                if waited + pause > max_wait:
                    raise TimeoutError(f"shared rate limiter: no room within {max_wait:.0f}s")
                self.clock.sleep(pause)
                waited += pause
            return
        while (pause := self.wait_time()) > 0:
            if waited + pause > max_wait:
                raise TimeoutError(f"rate limiter: no room within {max_wait:.0f}s")
            self.clock.sleep(pause)
            waited += pause
        with self._lock:
            self._sent.append(self.clock.monotonic())
