"""Order management: send journaled orders, resolve unknown outcomes, book fills, cancel/replace.

Every order row exists (``pending_submit``) before we talk to the broker; it becomes
``submitting`` (committed) right before the call. A definitive refusal becomes ``rejected``; any
unknown outcome becomes ``unknown`` and is looked up by ``client_order_id``: found -> adopted,
never seen -> the same id is sent again (a duplicate would be refused by the broker, so this can
never create a second order), at most ``max_resends`` times, and only while its send window
is open (:mod:`live.orders.send_window`): an order the broker never saw whose session has passed (a
crash, then downtime across a close or a new data session) is expired with a journaled reason,
never sent late. Only a change is journaled: a report that changes nothing adds no event.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from datetime import timedelta

from live.book import Ledger
from live.brokers.base import Broker
from live.clock import Clock
from live.errors import (
    AmbiguousSubmit,
    AuthRejected,
    BrokerError,
    OrderNotFound,
    OrderRejected,
)
from live.journal import orders as jo
from live.journal.store import Journal
from live.orders.fills import leg_fills
from live.orders.ids import with_attempt
from live.orders.reports import OrderReport, OrderStatus, OrderTicket, Quote
from live.orders.state import EPS, OrderEvent, OrderState
from strategies.models import OrderIntent, OrderType, Side

log = logging.getLogger("live.orders")
Notify = Callable[..., None]


REPRICE, REPRICE_DROPPED = "reprice_cancel", "reprice_dropped"  # order-event sources


def net_mid(intent: OrderIntent, quotes: Mapping[str, Quote]) -> float | None:
    """Net mid of a spread per unit (positive = debit), to the cent; None if a leg has none."""
    net = 0.0
    for leg in intent.legs:
        q = quotes.get(leg.symbol)
        if q is None or not math.isfinite(q.mid) or q.mid <= 0:
            return None
        net += (1 if leg.side is Side.BUY else -1) * leg.ratio_qty * q.mid
    return round(net, 2)


def ticket_for(row: jo.OrderRow) -> OrderTicket:
    """The ticket of a journaled order (quantity/price overrides for resubmissions)."""
    intent = row.intent
    qty = None if row.qty == float(intent.qty) else row.qty
    price = None if row.limit_price == intent.limit_price else row.limit_price
    return OrderTicket(row.client_order_id, intent, row.deployment_id, qty, price)


class OrderManager:
    """Talks to the broker about orders and books the results in the journal and ledger."""

    def __init__(
        self,
        journal: Journal,
        broker: Broker,
        ledger: Ledger,
        clock: Clock,
        crash: Callable[[str], None],
        notify: Notify | None = None,
        max_resends: int = 2,
    ) -> None:
        self.j, self.broker, self.ledger, self.clock = journal, broker, ledger, clock
        self.crash = crash
        self.notify = notify or (lambda *a, **k: None)
        self.max_resends = max_resends
        self.on_send: Callable[[str], None] = lambda cid: None  # latency probe
        # told of a 401 (the runner halts new orders and re-reads the keys at once)
        self.on_auth_rejected: Callable[[], None] = lambda: None
        self.may_resend: Callable[[jo.OrderRow], bool] = lambda row: True  # runner's gate
        # the runner's send window: why an unacknowledged order may no longer be sent
        self.too_late: Callable[[jo.OrderRow], str | None] = lambda row: None
        self.defer_positions = False  # batch the positions-cache writes (flush_positions)
        self._dirty: set[tuple[str, str]] = set()
        self._refused: dict[str, str] = {}  # cid -> a 4xx answer that may have been a duplicate

    # -- sending -------------------------------------------------------------------------------
    def mark_submitting(self, rows: list[jo.OrderRow], source: str = "submit") -> None:
        """Durably mark ``rows`` as handed to the broker (one commit for the batch)."""
        with self.j.tx():
            for row in rows:
                jo.update_order(
                    self.j,
                    row.client_order_id,
                    self.clock.now(),
                    source,
                    status=OrderStatus.SUBMITTING,
                )

    def send(self, row: jo.OrderRow, source: str = "submit", marked: bool = False) -> None:
        """Mark ``submitting`` (durably, unless ``marked`` already), call the broker, then book
        what it answered."""
        cid = row.client_order_id
        if not marked:
            self.mark_submitting([row], source)
        self.crash("before_send")
        ticket = ticket_for(row)
        self.on_send(cid)
        try:
            report = self.broker.submit(ticket)
        except OrderRejected as exc:
            jo.update_order(
                self.j, cid, self.clock.now(), "broker", status=OrderStatus.REJECTED, note=str(exc)
            )
            self.notify("order_rejected", f"{cid}: {exc}", "warning")
            return
        except BrokerError as exc:  # ambiguous, transient or malformed: the outcome is unknown
            if isinstance(exc, AuthRejected):
                self.on_auth_rejected()
            if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 429):
                self._refused[cid] = str(exc)  # the broker answered: if it lacks the id, it refused
            # 401 and 429 were refused before processing: the order is unsent, not rejected
            jo.update_order(
                self.j,
                cid,
                self.clock.now(),
                "broker",
                status=OrderStatus.UNKNOWN,
                note=f"{type(exc).__name__}: {exc}",
            )
            self.resolve(cid)
            return
        self.crash("after_send_before_ack")
        self.apply(report, source)

    def resolve(self, cid: str) -> None:
        """Settle an order whose outcome is unknown by looking it up by client id."""
        try:
            report = self.broker.get_order(cid)
        except BrokerError as exc:
            log.warning("lookup of %s failed (%s); will retry", cid, type(exc).__name__)
            return
        if report is not None:
            self.apply(report, "lookup")
            return
        row = jo.get_order(self.j, cid)
        if row is None or row.status.terminal:
            return
        refused = self._refused.pop(cid, None)
        if refused is not None:  # a 422 (e.g. 40010001) that was not our duplicate: a rejection
            jo.update_order(
                self.j, cid, self.clock.now(), "lookup", status=OrderStatus.REJECTED, note=refused
            )
            self.notify("order_rejected", f"{cid}: {refused}", "warning")
            return
        late = self.too_late(row)
        if late is not None:  # never sent late, whatever the reason it was not sent in time
            note = f"not at the broker (looked up by client id); expired unsent: {late}"
            jo.update_order(
                self.j, cid, self.clock.now(), "lookup", status=OrderStatus.UNSENT_EXPIRED,
                note=note,
            )  # fmt: skip
            self.notify("order_expired", f"{cid}: {note}", "warning")
            return
        events = self.j.rows("SELECT source FROM order_events WHERE client_order_id=?", cid)
        sources = [e[0] for e in events]
        if "replace" in sources or sources.count("resend") >= self.max_resends:
            jo.update_order(
                self.j,
                cid,
                self.clock.now(),
                "lookup",
                status=OrderStatus.REJECTED,
                note="broker never acknowledged the order",
            )
            self.notify("order_lost", f"{cid}: not at the broker; given up", "warning")
            return
        if self.may_resend(row):
            self.send(row, "resend")  # never seen: the same id is safe to send again

    # -- booking -------------------------------------------------------------------------------
    def apply(self, report: OrderReport, source: str) -> int:
        """Apply a broker report to its journaled order; returns how many fills were new."""
        row = jo.get_order(self.j, report.client_order_id)
        if row is None:
            return 0
        state = OrderState(
            row.client_order_id, row.qty, row.status, row.filled_qty, row.filled_avg_price
        )
        applied = state.apply(OrderEvent(report.status, report.filled_qty, report.filled_avg_price))
        if applied.note:
            log.info("order %s: %s", row.client_order_id, applied.note)
        fills = leg_fills(self.j, row, report, state.filled_qty, self.clock.now())
        now = self.clock.now()
        changed = (
            applied.status_changed
            or abs(state.filled_qty - row.filled_qty) > EPS
            or state.filled_avg_price != row.filled_avg_price
            or (report.broker_id is not None and report.broker_id != row.broker_id)
            or (report.submitted_at is not None and report.submitted_at != row.submitted_at)
        )
        with self.j.tx():
            new = jo.record_fills(self.j, fills)
            if changed or new:  # only a change is journaled (a restart re-reads every order)
                jo.update_order(
                    self.j,
                    row.client_order_id,
                    now,
                    source,
                    status=state.status if applied.status_changed else None,
                    filled_qty=state.filled_qty,
                    avg_price=state.filled_avg_price,
                    broker_id=report.broker_id,
                    submitted_at=report.submitted_at,
                    note=applied.note,
                )
        if new:
            self.crash("after_fill_before_position")
            self.book(new)
        return len(new)

    def book(self, fills: list[jo.FillRow]) -> None:
        """Apply committed fills to the in-memory ledger and the positions cache."""
        for f in fills:
            self.ledger.apply(f)
        self._dirty |= {(f.deployment_id, f.symbol) for f in fills}
        if not self.defer_positions:
            self.flush_positions()

    def flush_positions(self) -> None:
        """Write the positions cache for every key changed since the last flush."""
        if self._dirty:
            jo.upsert_positions(self.j, self.ledger, self._dirty, self.clock.now())
            self._dirty = set()

    # -- polling, cancel, replace --------------------------------------------------------------
    def poll(self) -> None:
        """Refresh every open order from the broker (one windowed list, lookups for the rest)."""
        rows = jo.open_orders(self.j)
        if not rows:
            return
        after = min(r.created_at for r in rows) - timedelta(minutes=5)
        reports = {r.client_order_id: r for r in self.broker.list_orders(after=after)}
        for row in rows:
            report = reports.get(row.client_order_id)
            if report is not None:
                self.apply(report, "poll")
            else:
                self.resolve(row.client_order_id)

    def cancel(self, row: jo.OrderRow) -> None:
        """Request cancellation; the next poll books the outcome."""
        if row.broker_id is None:
            self.resolve(row.client_order_id)
            return
        with contextlib.suppress(OrderRejected, OrderNotFound):  # already terminal
            self.broker.cancel(row.broker_id)
        self.resolve(row.client_order_id)

    def cancel_all(self) -> int:
        """Cancel every open order; returns how many were asked."""
        rows = jo.open_orders(self.j)
        for row in rows:
            if row.intent.is_mleg:  # a halt's cancel is final: no re-priced resubmission
                jo.update_order(
                    self.j,
                    row.client_order_id,
                    self.clock.now(),
                    REPRICE_DROPPED,
                    note="cancel all",
                )
            self.cancel(row)
        return len(rows)

    def reprice_stale(self, quotes: Mapping[str, Quote], stale_after_s: float) -> int:
        """Re-price limit orders older than ``stale_after_s``; returns orders touched.

        Simple orders are replaced at the current reference price (new client id ``-rN``).
        Alpaca documents no replace for ``mleg`` orders: a stale spread is cancelled (the intent is
        journaled first) and, once the broker confirms the cancel, its unfilled quantity
        becomes a new attempt at the legs' net mid that goes through the risk engine like any
        pending order: never two live orders for one intent.
        """
        now = self.clock.now()
        touched = 0
        for row in jo.open_orders(self.j):
            since = row.submitted_at or now
            if (
                row.intent.order_type is not OrderType.LIMIT
                or row.broker_id is None
                or (now - since).total_seconds() < stale_after_s
            ):
                continue
            touched += 1
            if row.intent.is_mleg:
                jo.update_order(
                    self.j, row.client_order_id, now, REPRICE, note="cancel to re-price"
                )
                self.cancel(row)
                continue
            leg = row.intent.legs[0]
            quote = quotes.get(leg.symbol)
            price = quote.reference(leg.side) if quote is not None else float("nan")
            if not math.isfinite(price) or price <= 0:
                self.cancel(row)
                continue
            self._replace(row, round(price, 2))
        return touched + self.requeue_repriced(quotes)

    def requeue_repriced(self, quotes: Mapping[str, Quote]) -> int:
        """New attempts for spreads cancelled to re-price (only once the cancel is confirmed,
        at most one per cancelled attempt); returns attempts journaled."""
        rows = self.j.rows(
            "SELECT o.client_order_id FROM orders o WHERE o.status = ? AND EXISTS (SELECT 1 "
            "FROM order_events e WHERE e.client_order_id = o.client_order_id AND e.source = ?) "
            "AND NOT EXISTS (SELECT 1 FROM order_events e WHERE e.client_order_id = "
            "o.client_order_id AND e.source = ?) AND NOT EXISTS (SELECT 1 FROM orders n WHERE "
            "n.intent_id = o.intent_id AND n.attempt > o.attempt)",
            OrderStatus.CANCELED.value, REPRICE, REPRICE_DROPPED,
        )  # fmt: skip
        added = 0
        for (cid,) in rows:
            row = jo.get_order(self.j, cid)
            if row is None or not self.may_resend(row):
                continue
            left = math.floor(row.qty - row.filled_qty + 1e-9)
            price = net_mid(row.intent, quotes)
            now = self.clock.now()
            if left < 1 or price is None:
                why = "nothing left" if left < 1 else "no mid for every leg"
                jo.update_order(self.j, cid, now, REPRICE_DROPPED, note=why)
                if left >= 1:
                    self.notify("reprice_dropped", f"{cid}: {why}; not resubmitted", "warning")
                continue
            attempt = row.attempt + 1
            jo.add_order(
                self.j, row.intent_id, row.deployment_id, with_attempt(cid, attempt), attempt,
                float(left), price, row.session, now,
            )  # fmt: skip
            added += 1
        return added

    def _replace(self, row: jo.OrderRow, price: float) -> None:
        attempt = row.attempt + 1
        cid = with_attempt(row.client_order_id, attempt)
        left = row.qty - row.filled_qty
        jo.add_order(
            self.j,
            row.intent_id,
            row.deployment_id,
            cid,
            attempt,
            left,
            price,
            row.session,
            self.clock.now(),
        )
        jo.update_order(self.j, cid, self.clock.now(), "replace", status=OrderStatus.SUBMITTING)
        try:
            report = self.broker.replace(row.broker_id or "", left, price, cid)
        except OrderRejected as exc:
            jo.update_order(
                self.j,
                cid,
                self.clock.now(),
                "broker",
                status=OrderStatus.REJECTED,
                note=f"replace refused: {exc}",
            )
        except AmbiguousSubmit:
            jo.update_order(self.j, cid, self.clock.now(), "broker", status=OrderStatus.UNKNOWN)
            self.resolve(cid)
        else:
            self.apply(report, "replace")
        self.resolve(row.client_order_id)
