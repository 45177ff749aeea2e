"""Vendor request budgets: one sliding window per (vendor API, key), shared where it must be.

Alpaca allows 200 requests a minute per account and Polygon a plan's rate per key, whatever
number of processes use the key: a Dagster run per partition, a live runner, ``stream run``'s
gap backfill. A per-process window lets N processes send N times the budget and earn 429s. So
the window is a :class:`RequestWindow` backend chosen by one switch:

- unset ``ALPACA_IMPROVED_BUDGET_URL``: :class:`LocalWindow`, exact within this process (the
  embedded default: one machine, one process at a time);
- ``ALPACA_IMPROVED_BUDGET_URL=redis://host:6379/0``: :class:`RedisWindow`, one sliding-window
  log per budget in Redis (a sorted set), taken atomically by a Lua script that reads the
  Redis server's clock, so every process on every machine shares one window and one clock.

A budget is named by vendor API and a hash of the key (:func:`budget_name`): the key itself is
never sent to Redis. A Redis that cannot be reached fails at start-up with one line naming the
variable (password redacted), never mid-run.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from contracts.errors import ContractError

BUDGET_VAR = "ALPACA_IMPROVED_BUDGET_URL"

# KEYS[1] the window; ARGV: limit, window in microseconds, a unique member. Returns 0 when the
# request was counted, else the microseconds until the oldest request leaves the window.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class BudgetConfigError(ContractError):
    """The shared budget store is misconfigured or unreachable (the message names it)."""


class RequestWindow(Protocol):
    """At most ``limit`` requests in any ``window_s`` seconds."""

    limit: int
    window_s: float

    def try_take(self) -> float:
        """Count one request if it fits now (returns 0.0), else the seconds to wait."""
        ...


def budget_name(api: str, key: str) -> str:
    """``<api>:<12 hex of sha256(key)>``: one budget per API and key, the key never shown."""
    return f"{api}:{hashlib.sha256(key.encode()).hexdigest()[:12]}"


class LocalWindow:
    """An exact sliding window within this process (thread-safe)."""

    def __init__(
        self, limit: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def try_take(self) -> float:
        with self._lock:
            now = self.clock()
            while self._sent and self._sent[0] <= now - self.window_s:
                self._sent.popleft()
            if len(self._sent) < self.limit:
                self._sent.append(now)
                return 0.0
            return max(self._sent[0] + self.window_s - now, 1e-6)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class RedisWindow:
    """One budget's sliding-window log in Redis (see the module docstring).

    Raises:
        BudgetConfigError: The URL is not ``redis://``/``rediss://``/``unix://``, or the server
            does not answer a PING.
    """

    def __init__(self, url: str, name: str, limit: int, window_s: float = 60.0) -> None:
        import redis

        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise BudgetConfigError(
                f"{BUDGET_VAR}={_redacted(url)} is not a Redis URL; use redis://host:6379/0"
            )
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit, self.window_s, self.key = limit, window_s, f"alpaca_improved:budget:{name}"
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise BudgetConfigError(
                f"{BUDGET_VAR}={_redacted(url)} does not answer ({type(exc).__name__}); start "
                f"Redis there or unset {BUDGET_VAR} to keep budgets per process"
            ) from None
        self._take = self._client.register_script(_TAKE)

    def try_take(self) -> float:
        wait_us = self._take(keys=[self.key], args=[self.limit, int(self.window_s * 1e6),
                                                    uuid.uuid4().hex])  # fmt: skip
        return int(wait_us) / 1e6  # type: ignore[arg-type]


def request_window(
    name: str, limit: int, window_s: float = 60.0, env: Mapping[str, str] | None = None
) -> LocalWindow | RedisWindow:
    """The window for budget ``name``: shared through Redis when ``ALPACA_IMPROVED_BUDGET_URL``
    is set, else local to this process."""
    env = os.environ if env is None else env
    url = env.get(BUDGET_VAR, "").strip()
    return RedisWindow(url, name, limit, window_s) if url else LocalWindow(limit, window_s)
