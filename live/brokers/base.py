"""The broker contract every adapter implements (Nautilus' ``_template/execution.py`` style).

Required methods: :meth:`Broker.submit`, :meth:`Broker.cancel`, :meth:`Broker.get_order`,
:meth:`Broker.list_orders`, :meth:`Broker.positions`, :meth:`Broker.account`,
:meth:`Broker.clock`. Optional: :meth:`Broker.replace` (default: unsupported),
:meth:`Broker.activities` (default: none), :meth:`Broker.step` (simulators advance here).

Errors: ``RetryableBrokerError`` (retry can help), ``OrderRejected`` (don't retry),
``AmbiguousSubmit`` (look the order up by client id first), ``MalformedResponse`` (fail closed),
``OrderNotFound``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import date, datetime, timedelta

from live.clock import MarketClock
from live.errors import MalformedResponse, OrderRejected
from live.orders.reports import (
    AccountReport,
    ActivityReport,
    OrderReport,
    OrderTicket,
    PositionReport,
)

PAGE_LIMIT = 500  # Alpaca's max page size for GET /v2/orders
MAX_PAGES = 2_000
OPTION_ACTIVITIES = ("OPASN", "OPEXC", "OPEXP")


class Broker(ABC):
    """One account at one broker."""

    name: str = "broker"
    paper: bool = True

    @abstractmethod
    def submit(self, ticket: OrderTicket) -> OrderReport:
        """Send a new order under ``ticket.client_order_id``."""

    @abstractmethod
    def cancel(self, broker_id: str) -> None:
        """Request cancellation (the order's status tells the outcome)."""

    def replace(
        self, broker_id: str, qty: float, limit_price: float | None, client_order_id: str
    ) -> OrderReport:
        """Replace an open order with a new one (new ``client_order_id``)."""
        raise OrderRejected(f"{self.name} does not support replace")

    @abstractmethod
    def get_order(self, client_order_id: str) -> OrderReport | None:
        """The order with ``client_order_id``, or None when the broker has never seen it."""

    @abstractmethod
    def list_page(
        self, after: datetime | None, until: datetime | None, limit: int
    ) -> list[OrderReport]:
        """One page of orders (all statuses) submitted after ``after``, oldest first."""

    def list_orders(
        self, after: datetime | None = None, until: datetime | None = None, limit: int = PAGE_LIMIT
    ) -> list[OrderReport]:
        """Every order in the window, walking pages by ``after`` (no page tokens at Alpaca)."""
        return walk_pages(lambda a: self.list_page(a, until, limit), after, limit)

    @abstractmethod
    def positions(self) -> list[PositionReport]:
        """All open positions (an error raises; never an empty list in its place)."""

    @abstractmethod
    def account(self) -> AccountReport:
        """Account numbers."""

    @abstractmethod
    def clock(self) -> MarketClock:
        """The market clock (``/v2/clock``)."""

    def activities(self, since: date | None = None) -> list[ActivityReport]:
        """Option assignment, exercise and expiry activities since ``since``."""
        return []

    def step(self) -> None:  # noqa: B027 - optional hook, deliberately a no-op by default
        """Advance a simulation (fills, expiries); real brokers do nothing."""

    def refresh_credentials(self) -> bool:
        """Re-read the broker's keys after an :class:`~live.errors.AuthRejected`; True when
        new keys are now in use (brokers without keys: never)."""
        return False


def walk_pages(
    fetch: Callable[[datetime | None], list[OrderReport]], after: datetime | None, limit: int
) -> list[OrderReport]:
    """All orders from pages fetched oldest-first by ``after`` cursor.

    The cursor moves to the newest ``submitted_at`` seen minus 1 µs so orders sharing a timestamp
    at a page boundary are fetched again rather than skipped; ids dedupe them. A page that adds
    nothing new while full means the broker's ordering is unusable: fail closed.
    """
    seen: dict[str, OrderReport] = {}
    cursor = after
    for _ in range(MAX_PAGES):
        page = fetch(cursor)
        fresh = [r for r in page if r.broker_id not in seen]
        seen.update((r.broker_id, r) for r in page)
        if len(page) < limit:
            return list(seen.values())
        if not fresh:
            raise MalformedResponse(f"order pages stopped advancing at {cursor} (limit {limit})")
        cursor = max(r.submitted_at for r in page) - timedelta(microseconds=1)
    raise MalformedResponse(f"more than {MAX_PAGES} order pages")
