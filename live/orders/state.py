"""The order state machine: Alpaca statuses, legal transitions only, terminal states absorbing.

Events may arrive duplicated, late or out of order (polls racing stream updates, a report fetched
during reconciliation). The machine therefore:

* never leaves a terminal status (``filled``, ``canceled``, ``expired``, ``replaced``,
  ``rejected`` and our local ``risk_rejected`` / ``unsent_expired``);
* ignores a status that is *behind* the current one (a late ``new`` after ``partially_filled``)
  instead of failing, and refuses an illegal one (``filled`` with less than ``qty`` filled,
  ``rejected`` after a fill). ``done_for_day`` ranks with ``partially_filled``: a ``new`` after it
  is treated as stale (without event timestamps a late ``new`` and a next-session ``new`` look
  alike; staying ``done_for_day`` is harmless because it is still an open status);
* keeps ``filled_qty`` monotone and ``<= qty`` (a cumulative quantity above ``qty`` is refused);
* applies each execution id once, so a duplicated fill is a no-op;
* reports the fill delta (quantity and price) each accepted event adds, so callers book exactly
  what is new.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from live.orders.reports import OrderStatus as S

EPS = 1e-9
_RANK = {
    S.PENDING_SUBMIT: 0, S.SUBMITTING: 1, S.UNKNOWN: 1, S.PENDING_NEW: 2, S.ACCEPTED: 3,
    S.ACCEPTED_FOR_BIDDING: 3, S.PENDING_REVIEW: 3, S.HELD: 3, S.NEW: 4,
    S.PARTIALLY_FILLED: 5, S.DONE_FOR_DAY: 5, S.PENDING_CANCEL: 5, S.PENDING_REPLACE: 5,
    S.STOPPED: 5, S.SUSPENDED: 5, S.CALCULATED: 5,
}  # fmt: skip
# Within one rank, without timestamps: more fills is newer; at equal fills this order decides.
_SUB = {
    S.PARTIALLY_FILLED: 0,
    S.DONE_FOR_DAY: 2,
    S.PENDING_REPLACE: 3,
    S.PENDING_CANCEL: 3,
    S.ACCEPTED: 0,
    S.PENDING_REVIEW: 1,
    S.HELD: 1,
    S.ACCEPTED_FOR_BIDDING: 1,
}
_LOCAL_ONLY_FROM = {
    S.RISK_REJECTED: {S.PENDING_SUBMIT},
    S.UNSENT_EXPIRED: {S.PENDING_SUBMIT, S.SUBMITTING, S.UNKNOWN},  # never acknowledged
    S.SUBMITTING: {S.PENDING_SUBMIT, S.UNKNOWN},
    S.UNKNOWN: {S.SUBMITTING},
}


def rank(status: S) -> int:
    """Progress rank of ``status``; terminal statuses rank highest."""
    return 9 if status.terminal else _RANK[status]


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One update about an order.

    Attributes:
        status: Reported status (None for a bare fill).
        filled_qty: Cumulative filled quantity, when the source reports it.
        filled_avg_price: Cumulative average fill price, when known.
        exec_id: Execution id of a fill event (deduplicated).
        fill_qty: Quantity of that execution (used when ``filled_qty`` is absent).
        fill_price: Price of that execution.
    """

    status: S | None = None
    filled_qty: float | None = None
    filled_avg_price: float | None = None
    exec_id: str | None = None
    fill_qty: float = 0.0
    fill_price: float | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """What an event changed: whether its status was taken, and the new fill (if any)."""

    status_changed: bool
    fill_qty: float
    fill_price: float | None
    note: str = ""


def legal(current: S, new: S, filled: float, qty: float, advanced: bool = False) -> str | None:
    """None if ``current -> new`` is legal with ``filled`` of ``qty`` done, else why not.

    ``advanced``: the event carried more fills than we had (so it is not older than our state).
    """
    if current.terminal:
        return f"{current} is terminal"
    if new in _LOCAL_ONLY_FROM:
        return None if current in _LOCAL_ONLY_FROM[new] else f"{current} -> {new} is local-only"
    if new is S.FILLED and filled < qty - EPS:
        return f"filled with only {filled} of {qty}"
    if new is S.PARTIALLY_FILLED and not (EPS < filled < qty - EPS):
        return f"partially_filled with {filled} of {qty}"
    if new is S.REJECTED and filled > EPS:
        return "rejected after a fill"
    if rank(new) < rank(current):
        return f"stale: {new} is behind {current}"
    if rank(new) == rank(current) and not advanced and _SUB.get(new, 1) < _SUB.get(current, 1):
        return f"stale: {new} after {current} without new fills"
    return None


@dataclass(slots=True)
class OrderState:
    """Mutable state of one order (journaled after each accepted event)."""

    client_order_id: str
    qty: float
    status: S = S.PENDING_SUBMIT
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    exec_ids: set[str] = field(default_factory=set)

    def apply(self, event: OrderEvent) -> Applied:
        """Apply ``event``; never raises for stale, duplicate or illegal input (it is refused)."""
        if event.exec_id is not None:
            if event.exec_id in self.exec_ids:
                return Applied(False, 0.0, None, "duplicate execution")
            self.exec_ids.add(event.exec_id)
        cum = self._cumulative(event)
        if cum is None:
            return Applied(False, 0.0, None, f"refused: filled {event.filled_qty} > qty {self.qty}")
        fill_qty, fill_price = self._book_fill(cum, event)
        changed, note = False, ""
        if event.status is not None and event.status is not self.status:
            why = legal(self.status, event.status, self.filled_qty, self.qty, fill_qty > 0)
            if why is None:
                self.status, changed = event.status, True
            else:
                note = why
        return Applied(changed, fill_qty, fill_price, note)

    def _cumulative(self, event: OrderEvent) -> float | None:
        if event.filled_qty is not None:
            cum = float(event.filled_qty)
        elif event.exec_id is not None:
            cum = self.filled_qty + max(float(event.fill_qty), 0.0)
        else:
            cum = self.filled_qty
        if not math.isfinite(cum) or cum > self.qty + EPS:
            return None
        if self.status in (S.REJECTED, S.RISK_REJECTED, S.UNSENT_EXPIRED):
            return self.filled_qty  # never filled by definition
        return max(cum, self.filled_qty)

    def _book_fill(self, cum: float, event: OrderEvent) -> tuple[float, float | None]:
        delta = cum - self.filled_qty
        if delta <= EPS:
            return 0.0, None
        old_qty, old_avg = self.filled_qty, self.filled_avg_price
        new_avg = event.filled_avg_price
        price: float | None
        if new_avg is not None and old_avg is not None and old_qty > 0:
            price = (new_avg * cum - old_avg * old_qty) / delta
        else:
            price = event.fill_price if event.fill_price is not None else new_avg
        if new_avg is None and price is not None:
            new_avg = price if old_avg is None else (old_avg * old_qty + price * delta) / cum
        self.filled_qty, self.filled_avg_price = cum, new_avg
        return delta, price
