"""The embedded simulated broker: fills against quotes with slippage, partial fills, rejections,
buying power, DAY-order expiry and option exercise/assignment/expiry at expiration.

Quotes come from a callable (the runner passes the latest snapshot's; tests pass their own).
Validation mirrors Alpaca's (ALPACA_NOTES §1.7) and a duplicate ``client_order_id`` answers like
the Alpaca adapter does (:class:`AmbiguousSubmit`: look it up). With ``state_path`` the state
survives restarts of the runner process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from live.book import mark_at
from live.brokers.base import Broker
from live.brokers.sim_fill import holding, leg_fees, leg_price, settle_expiries, try_fill
from live.brokers.sim_state import SimConfig, SimLeg, SimOrder, SimState, stamp
from live.clock import NEW_YORK, Clock, MarketClock, regular_hours
from live.errors import AmbiguousSubmit, OrderNotFound, OrderRejected
from live.orders.ids import MAX_LEN
from live.orders.reports import (
    AccountReport,
    ActivityReport,
    OrderReport,
    OrderStatus,
    OrderTicket,
    PositionReport,
    Quote,
)
from strategies.models import OrderType, TimeInForce

QuoteProvider = Callable[[str], Quote | None]


def alpaca_rules(ticket: OrderTicket, option_tifs: frozenset[TimeInForce]) -> str | None:
    """Alpaca's order validation (§1.7) for a ticket; None when acceptable."""
    intent = ticket.intent
    if not ticket.client_order_id or len(ticket.client_order_id) > MAX_LEN:
        return f"client_order_id must be 1-{MAX_LEN} characters"
    if intent.order_type not in (OrderType.MARKET, OrderType.LIMIT):
        return "options and mleg orders must be market or limit"
    symbols = {leg.symbol for leg in intent.legs}
    if intent.is_mleg and not 2 <= len(symbols) == len(intent.legs) <= 4:
        return "mleg orders need 2-4 legs with unique symbols"
    if intent.has_options or intent.is_mleg:
        if ticket.notional is not None or not float(ticket.order_qty).is_integer():
            return "qty must be whole contracts for options (no notional)"
        if ticket.extended_hours:
            return "extended hours are not supported for options"
        if intent.time_in_force not in option_tifs:
            return f"time_in_force {intent.time_in_force} is not allowed for options"
    return None


class SimBroker(Broker):
    """A broker living in this process (``state_path``: persist across restarts)."""

    name = "sim"
    paper = True

    def __init__(
        self,
        quotes: QuoteProvider,
        clock: Clock,
        config: SimConfig | None = None,
        state_path: Path | None = None,
    ) -> None:
        self.quotes = quotes
        self.clock_source = clock
        self.config = config or SimConfig()
        self.state_path = state_path
        if state_path is not None and state_path.exists():
            self.state = SimState.load(state_path, self.config.cash)
        else:
            self.state = SimState.new(self.config.cash)
        self._dirty: dict[str, SimOrder] = {}

    def _save(self, *orders: SimOrder) -> None:
        self._dirty.update((o.broker_id, o) for o in orders)
        if self.state_path is not None:
            self.state.append(self.state_path, list(self._dirty.values()))
        self._dirty.clear()

    # -- orders --------------------------------------------------------------------------------
    def submit(self, ticket: OrderTicket) -> OrderReport:
        cid = ticket.client_order_id
        if cid in self.state.by_client_id:
            raise AmbiguousSubmit("client_order_id must be unique", cid, 422, 40010001)
        reason = alpaca_rules(ticket, self.config.option_tifs)
        if reason is None:
            bad = [
                leg.symbol for leg in ticket.intent.legs if leg.symbol in self.config.reject_symbols
            ]
            reason = f"asset {bad[0]} is not tradable" if bad else None
        if reason is not None:
            raise OrderRejected(reason, 422, 42210000)
        order = self._new_order(ticket)
        self._check_buying_power(order)
        self.state.orders[order.broker_id] = order
        self.state.by_client_id[cid] = order.broker_id
        try_fill(self.state, order, self.quotes, self.config, self.clock_source.now())
        self._save(order)
        return order.report()

    def _new_order(self, ticket: OrderTicket) -> SimOrder:
        self.state.seq += 1
        now = stamp(self.clock_source.now())
        legs = [
            SimLeg(leg.symbol, leg.side.value, leg.ratio_qty, leg.asset_class.value)
            for leg in ticket.intent.legs
        ]
        return SimOrder(
            f"sim-{self.state.seq:08d}", ticket.client_order_id, legs, ticket.order_qty,
            ticket.order_type.value, ticket.price, ticket.time_in_force.value,
            OrderStatus.NEW.value, now, now)  # fmt: skip

    def _check_buying_power(self, order: SimOrder) -> None:
        """The accounting's rule (:meth:`Account.check`, as the backtest): buying power after
        the whole order at the fill model's prices stays >= 0 (collateral by maximum loss,
        naked calls refused) unless the order reduces a shortfall."""
        trades = []
        for leg in order.legs:
            px = leg_price(self.quotes(leg.symbol), leg.side, leg.asset_class, self.config)
            qty = leg.ratio * order.qty
            trades.append(
                (
                    holding(self.state, leg.symbol, leg.asset_class),
                    qty if leg.side == "buy" else -qty,
                    px if px is not None and math.isfinite(px) else 0.0,
                    leg_fees(self.config, leg.asset_class, qty),
                )
            )
        reason = self.state.account.check(trades)
        if reason is not None:
            raise OrderRejected(reason, 403, 40310000)

    def buying_power(self) -> float:
        """Cash minus collateral (:mod:`strategies.accounting.collateral`)."""
        return self.state.account.buying_power()

    def cancel(self, broker_id: str) -> None:
        order = self.state.orders.get(broker_id)
        if order is None:
            raise OrderNotFound(f"order {broker_id} not found", 404, 40410000)
        if OrderStatus(order.status).terminal:
            raise OrderRejected(f"order is {order.status}; cannot cancel", 422, 42210000)
        order.status, order.updated_at = OrderStatus.CANCELED.value, stamp(self.clock_source.now())
        self._save(order)

    def replace(
        self, broker_id: str, qty: float, limit_price: float | None, client_order_id: str
    ) -> OrderReport:
        old = self.state.orders.get(broker_id)
        if old is None or OrderStatus(old.status).terminal:
            raise OrderRejected(f"order {broker_id} is not open; cannot replace", 422, 42210000)
        if client_order_id in self.state.by_client_id:
            raise AmbiguousSubmit("client_order_id must be unique", client_order_id, 422, 40010001)
        self.state.seq += 1
        now = stamp(self.clock_source.now())
        legs = [SimLeg(leg.symbol, leg.side, leg.ratio, leg.asset_class) for leg in old.legs]
        new = SimOrder(
            f"sim-{self.state.seq:08d}",
            client_order_id,
            legs,
            qty,
            old.order_type,
            limit_price,
            old.tif,
            OrderStatus.NEW.value,
            now,
            now,
        )
        old.status, old.updated_at, old.replaced_by = OrderStatus.REPLACED.value, now, new.broker_id
        self.state.orders[new.broker_id] = new
        self.state.by_client_id[client_order_id] = new.broker_id
        try_fill(self.state, new, self.quotes, self.config, self.clock_source.now())
        self._save(old, new)
        return new.report()

    def get_order(self, client_order_id: str) -> OrderReport | None:
        bid = self.state.by_client_id.get(client_order_id)
        return None if bid is None else self.state.orders[bid].report()

    def list_page(
        self, after: datetime | None, until: datetime | None, limit: int
    ) -> list[OrderReport]:
        reports = sorted(
            (o.report() for o in self.state.orders.values()),
            key=lambda r: (r.submitted_at, r.broker_id),
        )
        out = [
            r
            for r in reports
            if (after is None or r.submitted_at > after)
            and (until is None or r.submitted_at <= until)
        ]
        return out[:limit]

    # -- account -------------------------------------------------------------------------------
    def positions(self) -> list[PositionReport]:
        return [
            PositionReport(s, h.qty, h.avg_price, h.asset_class, self._mark(s))
            for s, h in sorted(self.state.account.holdings.items())
            if h.qty != 0
        ]

    def _mark(self, symbol: str) -> float | None:
        q = self.quotes(symbol)
        return None if q is None or not math.isfinite(q.mid) else q.mid

    def account(self) -> AccountReport:
        account = self.state.account
        mark_at(account, {s: q for s in account.holdings if (q := self.quotes(s)) is not None})
        equity = account.equity()
        return AccountReport(
            equity,
            self.state.last_equity or equity,
            account.cash,
            account.buying_power(),
            account.buying_power(),
        )

    def clock(self) -> MarketClock:
        return regular_hours(self.clock_source.now())

    def activities(self, since: date | None = None) -> list[ActivityReport]:
        return [a for a in self.state.activity_reports() if since is None or a.day >= since]

    def step(self) -> None:
        """Fill what became fillable, expire DAY orders after the close, settle expiries."""
        now = self.clock_source.now()
        ny = now.astimezone(NEW_YORK)
        market = regular_hours(now)  # NYSE calendar: early closes end the day at 13:00
        after_close = ny.hour >= 16 or (
            not market.is_open and market.next_close.astimezone(NEW_YORK).date() != ny.date()
        )
        if self.state.day != ny.date().isoformat():  # a new day: yesterday's equity is the base
            self.state.last_equity = self.account().equity
            self.state.day = ny.date().isoformat()
        touched = []
        for order in list(self.state.orders.values()):
            if OrderStatus(order.status).terminal:
                continue
            touched.append(order)
            sub_day = datetime.fromisoformat(order.submitted_at).astimezone(NEW_YORK).date()
            if order.tif == "day" and (sub_day < ny.date() or after_close):
                order.status, order.updated_at = OrderStatus.EXPIRED.value, stamp(now)
                continue
            try_fill(self.state, order, self.quotes, self.config, now)
        cutoff = ny.date() if after_close else ny.date() - timedelta(days=1)
        settle_expiries(self.state, cutoff, self.quotes)
        self._save(*touched)


__all__ = ["SimBroker", "SimConfig", "QuoteProvider", "alpaca_rules"]
