"""Discord's rate limits as the local fake enforces them: per-route buckets and the global cap.

Discord limits each bot per *bucket* (a route plus its major parameter: the channel, the guild or
the webhook) and globally at 50 requests per second, and reports the bucket's state on every
response in ``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` (epoch seconds), ``-Reset-After``
(seconds) and ``-Bucket`` (an opaque hash shared by the routes of one bucket). Interaction
webhooks (``/webhooks/{application_id}/{token}``) are not bound by the global limit.

With ``enforce=False`` nothing is refused and ``X-RateLimit-Remaining`` never reaches 0 (a
bucket that is never empty), so a client measures its own overhead without pacing. The windows
here are fixed windows that open at a bucket's first request; ``scale`` divides every
window (``scale=10`` makes 5 per 5 s into 5 per 0.5 s) so a benchmark can run a long fan-out in
seconds while the shape of the limits, and so the client's pacing, stays the same.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass

GLOBAL_LIMIT = 50  # requests per second per bot (rate-limits.mdx)
GLOBAL_PER_S = 1.0


@dataclass(frozen=True, slots=True)
class BucketRule:
    """At most ``limit`` requests per ``per_s`` seconds for each value of the major parameter."""

    limit: int
    per_s: float
    shares: str  # routes with the same ``shares`` name use one bucket (e.g. role PUT and DELETE)


# the per-route limits Discord reports for a bot (observed values; Discord may change them)
RULES: dict[str, BucketRule] = {
    "POST /channels/{channel_id}/messages": BucketRule(5, 5.0, "messages.create"),
    "GET /channels/{channel_id}/messages": BucketRule(5, 1.0, "messages.list"),
    "POST /users/@me/channels": BucketRule(10, 10.0, "dm.create"),
    "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}": BucketRule(10, 10.0, "roles"),
    "DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}": BucketRule(10, 10.0, "roles"),
    "GET /guilds/{guild_id}/members/{user_id}": BucketRule(5, 1.0, "member.get"),
    "PATCH /webhooks/{application_id}/{token}/messages/@original": BucketRule(5, 2.0, "webhook"),
    "POST /webhooks/{application_id}/{token}": BucketRule(5, 2.0, "webhook"),
    "PUT /applications/{application_id}/guilds/{guild_id}/commands": BucketRule(
        2, 20.0, "commands"
    ),
}
DEFAULT_RULE = BucketRule(50, 1.0, "default")
MAJOR_PARAMS = ("channel_id", "guild_id", "token")  # what splits a route into buckets
NOT_GLOBAL = ("PATCH /webhooks/", "POST /webhooks/")  # interaction webhooks skip the global cap


@dataclass(frozen=True, slots=True)
class Verdict:
    """One request's rate-limit outcome: headers to send, and a 429 if it was refused."""

    headers: dict[str, str]
    limited: bool = False
    retry_after: float = 0.0
    scope: str = "user"  # user | global | shared


@dataclass
class _Window:
    limit: int
    per_s: float
    started: float = 0.0
    count: int = 0

    def roll(self, now: float) -> None:
        if self.count == 0 or now >= self.started + self.per_s:
            self.started, self.count = now, 0

    def reset_after(self, now: float) -> float:
        return max(self.started + self.per_s - now, 0.0) if self.count else self.per_s


def bucket_hash(shares: str) -> str:
    """The opaque bucket id Discord sends in ``X-RateLimit-Bucket``."""
    return hashlib.sha1(shares.encode()).hexdigest()[:16]


class RateLimiter:
    """The buckets and the global window of one bot (thread-safe)."""

    def __init__(self, *, enforce: bool = True, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError(f"limits_scale={scale!r}: must be > 0 (1.0 = Discord's own limits)")
        self.enforce = enforce
        self.scale = scale
        self._buckets: dict[tuple[str, str], _Window] = {}
        self._global = _Window(GLOBAL_LIMIT, GLOBAL_PER_S / scale)
        self._lock = threading.Lock()

    def check(self, route: str, params: dict[str, str]) -> Verdict:
        """Count one request on ``route`` (``"POST /channels/{channel_id}/messages"``)."""
        rule = RULES.get(route, DEFAULT_RULE)
        major = next((params[p] for p in MAJOR_PARAMS if p in params), "")
        now = time.time()
        with self._lock:
            win = self._buckets.setdefault(
                (rule.shares, major), _Window(rule.limit, rule.per_s / self.scale)
            )
            win.roll(now)
            self._global.roll(now)
            in_global = not route.startswith(NOT_GLOBAL)
            if self.enforce and in_global and self._global.count >= self._global.limit:
                after = self._global.reset_after(now)
                return Verdict(self._headers(rule, win, now), True, after, "global")
            if self.enforce and win.count >= win.limit:
                return Verdict(self._headers(rule, win, now), True, win.reset_after(now), "user")
            win.count += 1
            if in_global:
                self._global.count += 1
            return Verdict(self._headers(rule, win, now))

    def _headers(self, rule: BucketRule, win: _Window, now: float) -> dict[str, str]:
        after = win.reset_after(now)
        # with limits off the bucket is advertised as never empty, so clients do not wait
        remaining = max(win.limit - win.count, 0 if self.enforce else 1)
        return {
            "X-RateLimit-Limit": str(win.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{now + after:.3f}",
            "X-RateLimit-Reset-After": f"{after:.3f}",
            "X-RateLimit-Bucket": bucket_hash(rule.shares),
        }


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` is whole seconds, rounded up (the body carries the float)."""
    return str(max(math.ceil(seconds), 1))
