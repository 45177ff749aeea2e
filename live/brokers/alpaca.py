"""Alpaca through alpaca-py's ``TradingClient``: paper by default, live only when asked twice.

Live trading needs ``--live`` (``live=True``) *and* ``ALPACA_IMPROVED_LIVE_TRADING=yes`` in the
environment, and the host actually called must then be ``api.alpaca.markets``; paper must call
``paper-api.alpaca.markets`` or a loopback fake. ``ALPACA_TRADING_URL`` overrides the host (and
alpaca-py's ``url_override`` beats ``paper``), so the resolved URL is checked after the client is
built and every request's host is pinned (:class:`GuardedSession`). Keys come only from mounted
files (``ALPACA_API_KEY_FILE`` / ``ALPACA_SECRET_KEY_FILE``) or ``ALPACA_API_KEY`` /
``ALPACA_SECRET_KEY`` (:mod:`live.brokers.credentials`) and never appear in a repr, log line or
error. :meth:`AlpacaBroker.refresh_credentials` re-reads them, so a rotated key is picked up
without a restart.

alpaca-py's own retry loop (429/504, fixed 3 s sleep, ignoring ``X-Ratelimit-Reset``, re-POSTing
orders) is switched off by default (``sdk_retries=0``); reads are retried here with the reset
honoured, and a submit whose outcome is unknown surfaces as :class:`AmbiguousSubmit`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from alpaca.common.enums import Sort
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest, ReplaceOrderRequest

from contracts.budget import BUDGET_VAR, budget_name, request_window
from live.brokers import alpaca_parse as parse
from live.brokers.alpaca_errors import classify
from live.brokers.alpaca_session import GuardedSession
from live.brokers.base import OPTION_ACTIVITIES, Broker
from live.brokers.credentials import read_keys
from live.brokers.ratelimit import SlidingWindow
from live.clock import Clock, MarketClock
from live.errors import (
    ConfigError,
    LiveModeRefused,
    MalformedResponse,
    OrderNotFound,
    OrderRejected,
    RetryableBrokerError,
)
from live.orders.reports import (
    AccountReport,
    ActivityReport,
    OrderReport,
    OrderTicket,
    PositionReport,
)

PAPER_URL, LIVE_URL = "https://paper-api.alpaca.markets", "https://api.alpaca.markets"
PAPER_HOST, LIVE_HOST = "paper-api.alpaca.markets", "api.alpaca.markets"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
LIVE_OPT_IN = "ALPACA_IMPROVED_LIVE_TRADING"
T = TypeVar("T")
log = logging.getLogger("live.broker")


@dataclass(frozen=True)
class AlpacaSettings:
    """Resolved connection settings; the keys are excluded from ``repr``."""

    base_url: str
    live: bool
    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)

    @property
    def host(self) -> str:
        """The host every request must go to."""
        return urlsplit(self.base_url).hostname or ""


def settings_from_env(live: bool = False, env: Mapping[str, str] | None = None) -> AlpacaSettings:
    """Keys and host from the environment, with the paper/live guard applied.

    Raises:
        ConfigError: Keys missing.
        LiveModeRefused: Live without opt-in, or a host that does not match the mode.
    """
    env = os.environ if env is None else env
    keys = read_keys(env)
    url = (env.get("ALPACA_TRADING_URL") or (LIVE_URL if live else PAPER_URL)).rstrip("/")
    check_host(url, live, env)
    return AlpacaSettings(url, live, keys.api_key, keys.secret_key)


def check_host(url: str, live: bool, env: Mapping[str, str]) -> None:
    """Refuse a host that does not match the mode (see the module docstring)."""
    host = urlsplit(url).hostname or ""
    if live:
        if env.get(LIVE_OPT_IN) != "yes":
            raise LiveModeRefused(f"live trading needs {LIVE_OPT_IN}=yes in the environment")
        if host != LIVE_HOST or urlsplit(url).scheme != "https":
            raise LiveModeRefused(f"live trading must call https://{LIVE_HOST}, not {url!r}")
    elif host == LIVE_HOST:
        raise LiveModeRefused(f"{url!r} is Alpaca's LIVE host but paper trading was requested")
    elif host != PAPER_HOST and host not in LOOPBACK:
        raise LiveModeRefused(f"paper trading calls {PAPER_HOST} or a loopback fake, not {host!r}")


class AlpacaBroker(Broker):
    """The Alpaca Trading API (see the module docstring for the safety rules)."""

    name = "alpaca"

    def __init__(
        self, settings: AlpacaSettings, clock: Clock, requests_per_minute: int = 200,
        sdk_retries: int = 0, sdk_retry_wait: float = 3.0, read_attempts: int = 3,
        timeout: tuple[float, float] = (3.0, 10.0), max_reset_wait: float = 60.0,
        keys_env: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.paper = not settings.live
        self.keys_env = keys_env  # where refresh_credentials() re-reads keys (None: os.environ)
        self.on_keys: list[Callable[[str, str], None]] = []  # told of new keys (the stream)
        self.clock_source = clock
        self.read_attempts = read_attempts
        self.client = TradingClient(
            settings.api_key, settings.secret_key, paper=self.paper, url_override=settings.base_url
        )
        effective = urlsplit(str(self.client._base_url)).hostname  # url_override beats paper
        if effective != settings.host:
            raise LiveModeRefused(f"client resolved host {effective!r}, expected {settings.host!r}")
        self.client._retry = sdk_retries  # instance attrs: the constructor treats 0 as "default"
        self.client._retry_wait = sdk_retry_wait  # type: ignore[assignment]
        shared = None
        if (keys_env if keys_env is not None else os.environ).get(BUDGET_VAR):
            name = budget_name("alpaca-trading", settings.api_key)
            shared = request_window(name, requests_per_minute, env=keys_env)
        bucket = SlidingWindow(requests_per_minute, clock, shared=shared)
        self.session = GuardedSession(settings.host, clock, bucket, timeout, max_reset_wait)
        self.client._session = self.session

    def refresh_credentials(self) -> bool:
        """Re-read the keys (files first); True when they changed and are now in use.

        Called after a 401: a rotated secret mounted as a file (or a changed environment in
        tests) reaches the running client without a restart. Unreadable or missing keys leave
        the current ones in place (the runner stays halted on ``broker_auth``).
        """
        try:
            keys = read_keys(self.keys_env)
        except ConfigError as exc:
            log.warning("re-reading the Alpaca keys failed: %s", exc)
            return False
        client = self.client
        if (keys.api_key, keys.secret_key) == (client._api_key, client._secret_key):
            return False
        client._api_key, client._secret_key = keys.api_key, keys.secret_key
        for listener in self.on_keys:
            listener(keys.api_key, keys.secret_key)
        log.warning("Alpaca keys changed (%s); using the new keys", keys.origin)
        return True

    def _read(self, op: str, fn: Callable[[], T]) -> T:
        """Call a read, retrying retryable failures (bounded); malformed answers fail at once."""
        for attempt in range(self.read_attempts):
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classified right here
                err = classify(exc, op)
                if not isinstance(err, RetryableBrokerError) or attempt == self.read_attempts - 1:
                    raise err from exc
                self.clock_source.sleep(min(0.1 * 2**attempt, 1.0))
        raise AssertionError("unreachable")

    def submit(self, ticket: OrderTicket) -> OrderReport:
        cid = ticket.client_order_id
        try:
            request = parse.order_request(ticket)
        except (ValueError, TypeError) as exc:  # alpaca-py refused to build it: never sent
            raise OrderRejected(f"invalid order {cid}: {str(exc)[:200]}") from exc
        for attempt in range(3):
            try:
                return parse.order_report(self.client.submit_order(request))
            except Exception as exc:  # noqa: BLE001 - classified right here
                err = classify(exc, "submit", cid)
                if not isinstance(err, RetryableBrokerError) or attempt == 2:
                    raise err from exc  # a 429 was not processed: safe to send the same id again
        raise AssertionError("unreachable")

    def cancel(self, broker_id: str) -> None:
        try:
            self.client.cancel_order_by_id(broker_id)
        except Exception as exc:  # noqa: BLE001
            raise classify(exc, "cancel") from exc

    def replace(
        self, broker_id: str, qty: float, limit_price: float | None, client_order_id: str
    ) -> OrderReport:
        req = ReplaceOrderRequest(
            qty=int(qty), limit_price=limit_price, client_order_id=client_order_id
        )
        try:
            return parse.order_report(self.client.replace_order_by_id(broker_id, req))
        except Exception as exc:  # noqa: BLE001
            raise classify(exc, "replace", client_order_id) from exc

    def get_order(self, client_order_id: str) -> OrderReport | None:
        try:
            return self._read(
                "get_order",
                lambda: parse.order_report(self.client.get_order_by_client_id(client_order_id)),
            )
        except OrderNotFound:
            return None

    def list_page(
        self, after: datetime | None, until: datetime | None, limit: int
    ) -> list[OrderReport]:
        req = GetOrdersRequest(
            status=QueryOrderStatus.ALL,
            limit=limit,
            after=after,
            until=until,
            direction=Sort.ASC,
            nested=True,
        )
        return self._read(
            "list_orders", lambda: [parse.order_report(o) for o in self.client.get_orders(req)]
        )

    def positions(self) -> list[PositionReport]:
        return self._read(
            "positions", lambda: [parse.position_report(p) for p in self.client.get_all_positions()]
        )

    def account(self) -> AccountReport:
        return self._read("account", lambda: parse.account_report(self.client.get_account()))

    def clock(self) -> MarketClock:
        return self._read("clock", lambda: parse.market_clock(self.client.get_clock()))

    def activities(self, since: date | None = None) -> list[ActivityReport]:
        out: list[ActivityReport] = []
        params: dict[str, Any] = {
            "activity_types": ",".join(OPTION_ACTIVITIES),
            "direction": "asc",
            "page_size": 100,
        }
        if since is not None:
            params["after"] = since.isoformat()
        for _ in range(1_000):
            page = self._read("activities", lambda: _activities(self.client, params))
            out += page
            if len(page) < params["page_size"]:
                return out
            params["page_token"] = out[-1].activity_id
        raise MalformedResponse("more than 1000 activity pages")


def _activities(client: TradingClient, params: dict[str, Any]) -> list[ActivityReport]:
    page = client.get("/account/activities", dict(params))
    if not isinstance(page, list):
        raise MalformedResponse(f"activities: expected a list, got {type(page).__name__}")
    return [parse.activity_report(a) for a in page]
