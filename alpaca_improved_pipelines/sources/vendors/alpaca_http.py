"""alpaca-py clients made safe for batch use: timeouts, our retries and budget, own pagination.

alpaca-py sends requests without a timeout, retries 429/504 itself with fixed 3 s sleeps, and
its market-data pagination has no page cap (a repeated ``next_page_token`` loops forever when no
``limit`` is set). We keep its clients (auth headers, URL layout, ``allow_redirects=False``,
request models) and: mount a timeout adapter on each client's ``requests`` session, observe every
response through a ``requests`` hook (rate-limit headers, status), switch its internal retry off,
and walk pages ourselves via ``client.get`` with a page cap and cycle detection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import requests
from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient
from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.trading.client import TradingClient
from requests.adapters import HTTPAdapter

from alpaca_improved_pipelines.sources.vendors.errors import (
    PermanentVendorError,
    TransientVendorError,
    classify_status,
)
from alpaca_improved_pipelines.sources.vendors.paging import walk_pages
from alpaca_improved_pipelines.sources.vendors.ratelimit import RateBudget, RetryPolicy, Runtime

T = TypeVar("T")
VENDOR = "alpaca"


class _TimeoutAdapter(HTTPAdapter):
    """A transport adapter that applies a default timeout and never retries on its own."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(max_retries=0)
        self.timeout_s = timeout_s

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=timeout or self.timeout_s,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


class AlpacaHttp:
    """The three alpaca-py clients behind one budget, one retry policy and one page walker."""

    def __init__(
        self,
        key: str,
        secret: str,
        data_url: str | None,
        trading_url: str | None,
        timeout_s: float,
        budget: RateBudget,
        policy: RetryPolicy,
        runtime: Runtime,
        max_pages: int,
        on_event: Callable[[str, float], None],
    ) -> None:
        self.stock = StockHistoricalDataClient(key, secret, url_override=data_url)
        self.option = OptionHistoricalDataClient(key, secret, url_override=data_url)
        # paper=True only picks the default host; url_override (if any) decides the real one.
        self.trading = TradingClient(key, secret, paper=True, url_override=trading_url)
        self.budget, self.policy, self.runtime = budget, policy, runtime
        self.max_pages, self.on_event = max_pages, on_event
        self._last = threading.local()
        for client in (self.stock, self.option, self.trading):
            self._instrument(client, timeout_s)

    def _instrument(self, client: RESTClient, timeout_s: float) -> None:
        # alpaca-py's own retry loop (fixed sleeps, ignores X-Ratelimit-Reset) is switched off:
        # RESTClient treats retry_attempts=0 as "default", so set the attributes it reads.
        client._retry = 0
        client._retry_codes = []
        session: requests.Session = client._session
        for prefix in ("http://", "https://"):
            session.mount(prefix, _TimeoutAdapter(timeout_s))
        session.hooks["response"].append(self._observe)

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last.status = response.status_code
        self.budget.observe(response.headers)

    def call(self, fn: Callable[[], T], what: str) -> T:
        """Run one client call under the budget and the transient-only retry policy."""

        def once() -> T:
            self.budget.acquire()
            self._last.status = None
            self.on_event("requests", 1)
            try:
                result = fn()
            except APIError as err:
                resp = err.response
                status = err.status_code or 0
                wait = self.budget.retry_after(resp.headers, status) if resp is not None else None
                raise classify_status(
                    VENDOR,
                    what,
                    status,
                    resp.text if resp is not None else str(err),
                    retry_after=wait,
                ) from None
            except requests.exceptions.JSONDecodeError as err:
                self._refuse_redirect(what)
                raise PermanentVendorError(
                    f"{VENDOR} {what}: the response is not valid JSON "
                    f"(truncated or not JSON: {err.msg})"
                ) from None
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as err:
                raise TransientVendorError(
                    f"{VENDOR} {what}: {type(err).__name__} (timeout or connection failure)"
                ) from None
            except requests.RequestException as err:
                raise PermanentVendorError(f"{VENDOR} {what}: {type(err).__name__}") from None
            self._refuse_redirect(what)
            return result

        def retried(attempt: int, wait: float, err: TransientVendorError) -> None:
            self.on_event("retries", 1)
            self.on_event("waited_s", wait)

        return self.policy.run(once, self.runtime, on_retry=retried)

    def _refuse_redirect(self, what: str) -> None:
        status = getattr(self._last, "status", None)
        if status is not None and 300 <= status < 400:
            raise classify_status(VENDOR, what, status, "")

    def get(self, client: RESTClient, path: str, params: dict[str, Any], what: str) -> dict:
        """One GET through ``client``; the body must be a JSON object."""
        body = self.call(lambda: client.get(path, params), what)
        if not isinstance(body, dict):
            raise PermanentVendorError(
                f"{VENDOR} {what}: expected a JSON object, got {type(body).__name__}"
            )
        return body

    def pages(
        self, client: RESTClient, path: str, params: dict[str, Any], key: str, what: str
    ) -> Iterator[Any]:
        """Each page's ``key`` payload, following ``next_page_token`` under the page cap."""

        def fetch(token: str | None, n: int) -> tuple[Any, str | None]:
            query = {k: v for k, v in params.items() if v is not None}
            if token is not None:
                query["page_token"] = token
            body = self.get(client, path, query, f"{what} page {n}")
            if key not in body:
                raise PermanentVendorError(
                    f"{VENDOR} {what} page {n}: the response has no '{key}' "
                    f"(keys: {sorted(body)[:5]}); refusing to read it as 'no data'"
                )
            return body[key], body.get("next_page_token")

        return self.walk(fetch, what)

    def walk(
        self, fetch: Callable[[str | None, int], tuple[Any, str | None]], what: str
    ) -> Iterator[Any]:
        """Pages from ``fetch(token, page_number)``: capped, and failing on a repeated token."""
        return walk_pages(fetch, what, self.max_pages, VENDOR, self.on_event)
