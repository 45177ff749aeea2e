"""Our own broker-side types: what we send (:class:`OrderTicket`) and what brokers report.

Vendor payloads are parsed into these at the edge (``brokers/alpaca_parse.py``), so nothing past
the adapter touches alpaca-py models (Nautilus' report objects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from strategies.models import AssetClass, OrderIntent, OrderType, Side, TimeInForce


class OrderStatus(StrEnum):
    """Alpaca order statuses (alpaca-py ``OrderStatus``) plus our local pre-broker states."""

    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    DONE_FOR_DAY = "done_for_day"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    PENDING_REVIEW = "pending_review"
    ACCEPTED = "accepted"
    PENDING_NEW = "pending_new"
    ACCEPTED_FOR_BIDDING = "accepted_for_bidding"
    STOPPED = "stopped"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    CALCULATED = "calculated"
    HELD = "held"
    # local states, never sent by a broker
    PENDING_SUBMIT = "pending_submit"  # journaled, not yet handed to the broker
    SUBMITTING = "submitting"  # handed to the broker; outcome not yet known
    UNKNOWN = "unknown"  # outcome ambiguous; reconcile by client_order_id
    RISK_REJECTED = "risk_rejected"  # the risk engine refused it; never sent
    UNSENT_EXPIRED = "unsent_expired"  # its session passed before it could be sent

    @property
    def terminal(self) -> bool:
        """Absorbing: no further broker updates change it."""
        return self in TERMINAL

    @property
    def open(self) -> bool:
        """At the broker (or possibly at the broker) and not terminal."""
        return not self.terminal and self is not OrderStatus.PENDING_SUBMIT


TERMINAL = frozenset({
    OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REPLACED,
    OrderStatus.REJECTED, OrderStatus.RISK_REJECTED, OrderStatus.UNSENT_EXPIRED,
})  # fmt: skip
BROKER_STATUSES = frozenset(s for s in OrderStatus if s.value not in {
    "pending_submit", "submitting", "unknown", "risk_rejected", "unsent_expired"})  # fmt: skip


@dataclass(frozen=True, slots=True)
class OrderTicket:
    """One order as sent to a broker: an intent plus its id and Alpaca-only fields.

    ``notional`` and ``extended_hours`` are not part of :class:`OrderIntent`; the risk engine
    still checks them (no notional and no extended hours for options) for tickets built here.
    """

    client_order_id: str
    intent: OrderIntent
    deployment_id: str = ""
    qty: float | None = None
    limit_price: float | None = None
    notional: float | None = None
    extended_hours: bool = False

    @property
    def order_qty(self) -> float:
        """Quantity sent (the intent's unless overridden, e.g. a resubmitted remainder)."""
        return float(self.intent.qty if self.qty is None else self.qty)

    @property
    def price(self) -> float | None:
        """Limit price sent (the intent's unless re-priced)."""
        return self.intent.limit_price if self.limit_price is None else self.limit_price

    @property
    def order_type(self) -> OrderType:
        """The intent's order type."""
        return self.intent.order_type

    @property
    def time_in_force(self) -> TimeInForce:
        """The intent's time in force."""
        return self.intent.time_in_force

    @property
    def is_mleg(self) -> bool:
        """True for a multi-leg order."""
        return self.intent.is_mleg


@dataclass(frozen=True, slots=True)
class LegReport:
    """One leg of a broker order (a simple order reports its one leg too)."""

    symbol: str
    side: Side
    ratio_qty: float
    filled_qty: float
    filled_avg_price: float | None
    asset_class: AssetClass


@dataclass(frozen=True, slots=True)
class OrderReport:
    """A broker's view of one order."""

    client_order_id: str
    broker_id: str
    status: OrderStatus
    qty: float
    filled_qty: float
    filled_avg_price: float | None
    legs: tuple[LegReport, ...]
    submitted_at: datetime
    updated_at: datetime
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    replaced_by: str | None = None

    def __post_init__(self) -> None:
        for name in ("qty", "filled_qty"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"order {self.client_order_id}: {name} must be >= 0, got {value}")
        if self.filled_qty > self.qty + 1e-9:
            raise ValueError(f"order {self.client_order_id}: filled_qty > qty")

    @property
    def is_mleg(self) -> bool:
        """True for a multi-leg order."""
        return len(self.legs) > 1


@dataclass(frozen=True, slots=True)
class PositionReport:
    """A broker position (signed ``qty``)."""

    symbol: str
    qty: float
    avg_entry_price: float
    asset_class: AssetClass
    current_price: float | None = None


@dataclass(frozen=True, slots=True)
class AccountReport:
    """The account numbers the risk engine and reconciliation need."""

    equity: float
    last_equity: float
    cash: float
    buying_power: float
    options_buying_power: float
    trading_blocked: bool = False
    status: str = "ACTIVE"


@dataclass(frozen=True, slots=True)
class ActivityReport:
    """A non-trade activity: ``OPASN`` (assigned), ``OPEXC`` (exercised), ``OPEXP`` (expired)."""

    activity_id: str
    activity_type: str
    symbol: str
    qty: float
    day: date


@dataclass(frozen=True, slots=True)
class Quote:
    """A reference quote: ``bid``/``ask`` (NaN when unknown), ``last`` and its time."""

    bid: float
    ask: float
    last: float
    ts: datetime
    greeks: tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0))

    @property
    def mid(self) -> float:
        """Mid of a two-sided quote, else ``last``."""
        if math.isfinite(self.bid) and math.isfinite(self.ask) and self.bid > 0 < self.ask:
            return (self.bid + self.ask) / 2
        return self.last

    def reference(self, side: Side) -> float:
        """Price a marketable order pays: ask for buys, bid for sells, else ``last``."""
        px = self.ask if side is Side.BUY else self.bid
        return px if math.isfinite(px) and px > 0 else self.last
