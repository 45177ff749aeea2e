"""The HTTP session under alpaca-py: host pinning, timeouts and Alpaca's rate-limit headers.

alpaca-py sends every request through ``client._session.request(...)`` with no timeout and with
``allow_redirects=False``. We swap in :class:`GuardedSession`, which

* refuses any URL whose host is not the one the runner resolved (the host *actually called* is
  checked, since ``url_override`` silently beats ``paper``);
* adds connect/read timeouts (a hung socket becomes an error, not a frozen runner);
* waits for a client-side sliding-window budget before every request (Alpaca: at most 200
  requests in any minute per account);
* after a 429 or ``X-Ratelimit-Remaining: 0`` sends nothing until ``X-Ratelimit-Reset``, measured
  against the server's own ``Date`` header so a skewed local clock cannot shorten the wait
  (bounded by ``max_reset_wait``).
"""

from __future__ import annotations

import threading
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from live.brokers.ratelimit import SlidingWindow
from live.clock import Clock
from live.errors import LiveModeRefused, MalformedResponse


class GuardedSession(requests.Session):
    """A ``requests.Session`` pinned to one host, with timeouts and rate limiting."""

    def __init__(
        self,
        host: str,
        clock: Clock,
        bucket: SlidingWindow,
        timeout: tuple[float, float] = (3.0, 10.0),
        max_reset_wait: float = 60.0,
    ) -> None:
        super().__init__()
        self.host = host
        self.clock = clock
        self.bucket = bucket
        self.timeout = timeout
        self.max_reset_wait = max_reset_wait
        self.blocked_until = 0.0  # clock.monotonic() before which nothing is sent
        self.sent_at: list[float] = []  # monotonic send times (tests assert spacing)
        self._lock = threading.Lock()

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send one request after the host, reset-window and request-budget checks."""
        target = url if isinstance(url, str) else url.decode()
        host = urlsplit(target).hostname
        if host != self.host:
            raise LiveModeRefused(
                f"refusing to call host {host!r}; this runner is pinned to {self.host!r}"
            )
        kwargs.setdefault("timeout", self.timeout)
        kwargs["allow_redirects"] = False
        self._wait_reset()
        self.bucket.acquire(max_wait=self.max_reset_wait * 2)
        with self._lock:
            self.sent_at.append(self.clock.monotonic())
            del self.sent_at[:-1000]
        verb = method if isinstance(method, str) else method.decode()
        response = super().request(verb, target, *args, **kwargs)
        self._note(response)
        if 300 <= response.status_code < 400:  # never follow: a redirect could leak the keys
            raise MalformedResponse(
                f"refused redirect {response.status_code} from {host}", response.status_code
            )
        return response

    def _wait_reset(self) -> None:
        pause = self.blocked_until - self.clock.monotonic()
        if pause > 0:
            self.clock.sleep(min(pause, self.max_reset_wait))

    def _note(self, response: requests.Response) -> None:
        """Read ``X-Ratelimit-Remaining/Reset`` (epoch seconds) and block until the reset."""
        remaining = response.headers.get("X-Ratelimit-Remaining")
        limited = response.status_code == 429 or (remaining is not None and remaining == "0")
        if not limited:
            return
        wait = reset_wait(response.headers, self.clock, self.max_reset_wait)
        self.blocked_until = max(self.blocked_until, self.clock.monotonic() + wait)


def reset_wait(headers: Any, clock: Clock, cap: float) -> float:
    """Seconds until ``X-Ratelimit-Reset`` by the server's clock, within ``[0.05, cap]``.

    The server's ``Date`` header is the reference (it is truncated to whole seconds, so
    ``reset - Date`` never undershoots); without it the local clock is used. A missing or garbled
    reset waits 1 s.
    """
    try:
        reset = float(headers.get("X-Ratelimit-Reset"))
    except (TypeError, ValueError):
        return min(1.0, cap)
    try:
        server_now = parsedate_to_datetime(headers["Date"]).timestamp()
    except (KeyError, TypeError, ValueError, IndexError):
        server_now = clock.now().timestamp()
    return min(max(reset - server_now, 0.05), cap)
