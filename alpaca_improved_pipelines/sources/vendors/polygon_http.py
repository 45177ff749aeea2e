"""polygon-api-client made safe for batch use: real timeouts, strict decoding, our retries.

polygon-api-client 1.16.3 builds a urllib3 pool that retries 429/5xx on its own, follows
redirects, and never passes its ``read_timeout`` to requests (a stalled server hangs forever); its
decoded calls turn undecodable JSON or a missing ``results`` key into an empty list. We keep the
client (bearer auth, URL and parameter building, ``next_url`` handling) but swap its pool for one
with timeouts, no retries and no redirects that reports every response to our budget, and we
always ask for ``raw=True`` responses and decode them ourselves.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from polygon import RESTClient
from polygon.exceptions import BadResponse

from alpaca_improved_pipelines.sources.vendors.errors import (
    PermanentVendorError,
    TransientVendorError,
    classify_status,
)
from alpaca_improved_pipelines.sources.vendors.paging import walk_pages
from alpaca_improved_pipelines.sources.vendors.ratelimit import RateBudget, RetryPolicy, Runtime

VENDOR = "polygon"
OK_STATUSES = ("OK", "DELAYED")


class _ObservingPool(urllib3.PoolManager):
    """A pool that never follows redirects and reports each response to ``observer``."""

    def __init__(self, observer: Callable[[urllib3.BaseHTTPResponse], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._observer = observer

    def urlopen(  # type: ignore[override]  # same call shape as PoolManager.urlopen
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse:
        response = super().urlopen(method, url, redirect=False, **kw)
        self._observer(response)
        return response


class PolygonHttp:
    """One polygon ``RESTClient`` behind one budget, one retry policy and one page walker."""

    def __init__(
        self,
        key: str,
        base: str,
        timeout_s: float,
        budget: RateBudget,
        policy: RetryPolicy,
        runtime: Runtime,
        max_pages: int,
        on_event: Callable[[str, float], None],
    ) -> None:
        self.client = RESTClient(
            api_key=key,
            base=base.rstrip("/"),
            retries=0,
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
        )
        self.client.client = _ObservingPool(
            self._observe,
            num_pools=10,
            headers=self.client.headers,
            ca_certs=certifi.where(),
            cert_reqs="CERT_REQUIRED",
            retries=False,
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
        )
        self.budget, self.policy, self.runtime = budget, policy, runtime
        self.max_pages, self.on_event = max_pages, on_event
        self._last = threading.local()

    def _observe(self, response: urllib3.BaseHTTPResponse) -> None:
        self._last.status = response.status
        self._last.headers = dict(response.headers)
        self.budget.observe(response.headers)

    def call(self, fn: Callable[[], Any], what: str) -> dict[str, Any]:
        """One raw client call under the budget and retry policy; a JSON object or an error."""

        def once() -> dict[str, Any]:
            self.budget.acquire()
            self._last.status, self._last.headers = None, {}
            self.on_event("requests", 1)
            try:
                resp = fn()
            except BadResponse as err:  # carries only the body: the status comes from the pool
                status = self._last.status or 0
                wait = self.budget.retry_after(self._last.headers, status)
                raise classify_status(VENDOR, what, status, str(err), retry_after=wait) from None
            except urllib3.exceptions.HTTPError as err:
                raise TransientVendorError(
                    f"{VENDOR} {what}: {type(err).__name__} (timeout or connection failure)"
                ) from None
            try:
                body = json.loads(resp.data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as err:
                raise PermanentVendorError(
                    f"{VENDOR} {what}: the response is not valid JSON "
                    f"(truncated or not JSON: {err})"
                ) from None
            if not isinstance(body, dict):
                raise PermanentVendorError(f"{VENDOR} {what}: expected a JSON object")
            status = body.get("status")
            if status is not None and status not in OK_STATUSES:
                raise PermanentVendorError(
                    f"{VENDOR} {what}: status {status!r} "
                    f"{body.get('message') or body.get('error') or ''}"
                )
            return body

        def retried(attempt: int, wait: float, err: TransientVendorError) -> None:
            self.on_event("retries", 1)
            self.on_event("waited_s", wait)

        return self.policy.run(once, self.runtime, on_retry=retried)

    def pages(
        self,
        first: Callable[[], Any],
        what: str,
        empty_ok: Callable[[dict[str, Any]], bool] = lambda body: False,
    ) -> Iterator[list[dict[str, Any]]]:
        """Each page's ``results`` from ``first()`` then ``next_url``, capped and cycle-checked.

        A page without ``results`` is an error unless ``empty_ok(body)`` says the vendor
        legitimately answered "none" (aggregates say so with ``resultsCount: 0``).
        """

        def fetch(token: str | None, n: int) -> tuple[Any, str | None]:
            if token is None:
                body = self.call(first, f"{what} page {n}")
            else:  # like the client's own paginator: keep the path and query, ignore the host
                parts = urlsplit(token)
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                body = self.call(lambda: self.client._get(path=path, raw=True), f"{what} page {n}")
            results = body.get("results")
            if results is None:
                if not empty_ok(body):
                    raise PermanentVendorError(
                        f"{VENDOR} {what} page {n}: the response has no 'results' (keys: "
                        f"{sorted(body)[:6]}); refusing to read it as 'no data'"
                    )
                results = []
            if not isinstance(results, list):
                results = [results]
            return results, body.get("next_url")

        return walk_pages(fetch, what, self.max_pages, VENDOR, self.on_event)
