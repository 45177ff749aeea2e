"""Telegram's published flood limits, as the fake Bot API server enforces them.

Three lanes (core.telegram.org/bots/faq#broadcasting-to-users): about 30 messages per second
per bot overall, 1 per second per private chat, 20 per minute per group, supergroup or channel.
``scale`` multiplies every rate (10.0 gives 300/s, 10/s, 200/min) so benchmarks finish quickly.
Each lane is a sliding window; a send that would overflow one gets Telegram's 429 with
``retry_after`` = whole seconds (rounded up) until the oldest send in the full window expires.
Only accepted sends occupy a window, and every send and refusal is kept for benchmarks.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

# lane kind -> (messages, per seconds), unscaled
PUBLISHED_LIMITS: dict[str, tuple[int, float]] = {
    "global": (30, 1.0),
    "private": (1, 1.0),
    "group": (20, 60.0),
}


@dataclass(frozen=True, slots=True)
class LaneLimit:
    """At most ``count`` sends in any ``window_s`` seconds."""

    count: int
    window_s: float

    @property
    def rate_per_s(self) -> float:
        return self.count / self.window_s


def scaled_limit(messages: int, per_s: float, scale: float) -> LaneLimit:
    """The published ``messages`` per ``per_s`` seconds times ``scale``, as a whole count."""
    if scale <= 0:
        raise ValueError(f"limits_scale must be > 0, got {scale}")
    allowed = messages * scale
    count = max(1, math.floor(allowed))
    return LaneLimit(count, per_s * count / allowed)  # same rate, whole number of messages


@dataclass(frozen=True, slots=True)
class SendRecord:
    """One accepted send (monotonic seconds, chat id, lane kind of the chat, method)."""

    t: float
    chat_id: int
    kind: str  # "private" or "group"
    method: str


@dataclass
class FloodStats:
    """What a benchmark reads: accepted sends, and 429s per lane kind and per lane."""

    limits: dict[str, LaneLimit]
    sends: list[SendRecord] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)  # by kind: global/private/group
    rejected_by_lane: Counter[str] = field(default_factory=Counter)  # "private:123", "global"

    def floor_s(self) -> float:
        """The shortest time the recorded sends could have taken within the lanes.

        A lane allowing ``count`` per ``window_s`` needs ``(ceil(n / count) - 1) * window_s``
        for ``n`` sends; the floor is the slowest lane (the global one, or the busiest chat).
        """
        per_lane: Counter[tuple[str, int]] = Counter((s.kind, s.chat_id) for s in self.sends)
        spans = [_span(self.limits["global"], len(self.sends))]
        spans += [_span(self.limits[kind], n) for (kind, _), n in per_lane.items()]
        return max(spans)

    def span_s(self) -> float:
        """First to last accepted send."""
        return self.sends[-1].t - self.sends[0].t if self.sends else 0.0


def _span(limit: LaneLimit, n: int) -> float:
    return max(0, math.ceil(n / limit.count) - 1) * limit.window_s


def lane_kind(chat_type: str) -> str:
    return "private" if chat_type == "private" else "group"


class FloodControl:
    """Sliding-window lanes; not thread-safe (the server calls it under its state lock)."""

    def __init__(
        self, *, enforce: bool, scale: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.enforce = enforce
        self.limits = {k: scaled_limit(n, w, scale) for k, (n, w) in PUBLISHED_LIMITS.items()}
        self.stats = FloodStats(dict(self.limits))
        self._clock = clock
        self._windows: dict[str, deque[float]] = {}

    def reset(self) -> None:
        """Empty every window and the statistics (a benchmark's clean start after warm-up)."""
        self.stats = FloodStats(dict(self.limits))
        self._windows.clear()

    def check(self, chat_id: int, chat_type: str) -> int | None:
        """``retry_after`` seconds if a send to ``chat_id`` now would exceed a lane, else None."""
        if not self.enforce:
            return None
        now = self._clock()
        kind = lane_kind(chat_type)
        waits: dict[str, float] = {}
        for lane, limit_kind in (("global", "global"), (f"{kind}:{chat_id}", kind)):
            limit = self.limits[limit_kind]
            window = self._window(lane, now, limit)
            if len(window) >= limit.count:
                waits[lane] = window[0] + limit.window_s - now
        if not waits:
            return None
        for lane in waits:
            self.stats.rejected[lane.split(":", 1)[0]] += 1
            self.stats.rejected_by_lane[lane] += 1
        return max(1, math.ceil(max(waits.values())))

    def record(self, chat_id: int, chat_type: str, method: str) -> None:
        """Count an accepted send in its lanes."""
        now = self._clock()
        self.stats.sends.append(SendRecord(now, chat_id, lane_kind(chat_type), method))
        if not self.enforce:
            return
        for lane in ("global", f"{lane_kind(chat_type)}:{chat_id}"):
            self._windows.setdefault(lane, deque()).append(now)

    def _window(self, lane: str, now: float, limit: LaneLimit) -> deque[float]:
        window = self._windows.setdefault(lane, deque())
        while window and window[0] <= now - limit.window_s:
            window.popleft()
        return window
