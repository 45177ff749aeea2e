"""Reconciliation with the broker, at start and periodically; it fails closed.

Reads the account, all positions and all orders (walking 500-order pages by ``after``), adopts
orders carrying our prefix that the journal lacks, settles every ``submitting``/``unknown`` order
by client id, books option activities (``OPASN``/``OPEXC``/``OPEXP``) and finally compares local
positions with the broker's. Any failure, malformed answer or unexplained difference raises, and
the runner turns that into HALTED: a missing report never means flat (Nautilus).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from live.book import EPS, Ledger
from live.brokers.base import Broker
from live.clock import Clock
from live.errors import ReconciliationError
from live.journal import orders as jo
from live.journal.store import Journal
from live.orders import ids
from live.orders.manager import OrderManager
from live.orders.reports import (
    AccountReport,
    ActivityReport,
    OrderReport,
    OrderStatus,
    PositionReport,
)
from strategies import occ
from strategies.accounting import Holding
from strategies.models import AssetClass, Leg, OrderIntent, OrderType, PositionIntent, Side

EXTERNAL = "_external"


@dataclass
class ReconcileReport:
    """What a reconciliation found and did."""

    account: AccountReport
    orders_seen: int = 0
    adopted: int = 0
    fills: int = 0
    activities: int = 0
    mismatches: dict[str, tuple[float, float]] = field(default_factory=dict)


class Reconciler:
    """Aligns the journal with the broker (see the module docstring)."""

    def __init__(
        self,
        journal: Journal,
        broker: Broker,
        manager: OrderManager,
        ledger: Ledger,
        clock: Clock,
        crash: Callable[[str], None],
        adopt_external: bool = False,
    ) -> None:
        self.j, self.broker, self.manager, self.ledger = journal, broker, manager, ledger
        self.clock, self.crash, self.adopt_external = clock, crash, adopt_external

    def run(self, full: bool) -> ReconcileReport:
        """One reconciliation; raises on anything it cannot trust or explain."""
        out = ReconcileReport(self.broker.account())
        positions = self.broker.positions()
        reports = self.broker.list_orders(after=self._window(full))
        out.orders_seen = len(reports)
        self.crash("mid_reconciliation")
        for rep in reports:
            if not ids.is_ours(rep.client_order_id):
                continue
            if jo.get_order(self.j, rep.client_order_id) is None:
                self._adopt(rep)
                out.adopted += 1
            out.fills += self.manager.apply(rep, "reconcile")
        self._settle_missing({r.client_order_id for r in reports})
        out.activities = self._activities()
        out.mismatches = compare(self.ledger.totals(), positions)
        if out.mismatches and self.adopt_external:
            self._book_external(out.mismatches, positions)
            out.mismatches = compare(self.ledger.totals(), positions)
        if out.mismatches:
            raise ReconciliationError(f"positions differ (local, broker): {out.mismatches}")
        self.j.set_meta("last_reconcile", self.clock.now().isoformat())
        return out

    def _window(self, full: bool) -> datetime | None:
        rows = jo.list_orders(self.j) if full else jo.open_orders(self.j)
        if full and not rows:
            return None  # empty journal: walk everything to adopt orders with our prefix
        oldest = min((r.created_at for r in rows), default=self.clock.now())
        return min(oldest, self.clock.now()) - timedelta(days=1)

    def _settle_missing(self, seen: set[str]) -> None:
        for row in jo.open_orders(self.j):
            if row.client_order_id in seen:
                continue
            if row.status in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN):
                self.manager.resolve(row.client_order_id)
                continue
            report = self.broker.get_order(row.client_order_id)
            if report is None:
                raise ReconciliationError(
                    f"order {row.client_order_id} was acknowledged "
                    f"({row.status}) but the broker no longer knows it"
                )
            self.manager.apply(report, "reconcile")

    def _adopt(self, rep: OrderReport) -> None:
        """Journal an order with our prefix that the journal lacks (e.g. a lost journal)."""
        parts = ids.parse(rep.client_order_id)
        deps = [
            r[0]
            for r in self.j.rows("SELECT id FROM deployments")
            if parts is not None and ids.deploy8(r[0]) == parts.deploy8
        ]
        dep = deps[0] if len(deps) == 1 else "_adopted"
        legs = tuple(
            self._leg(dep, leg.symbol, leg.side, int(leg.ratio_qty), leg.asset_class)
            for leg in rep.legs
        )
        limit = rep.limit_price if rep.order_type is OrderType.LIMIT else None
        intent = OrderIntent(dep, legs, rep.qty, rep.order_type, limit, tag="adopted")
        session = f"adopted:{rep.client_order_id}"
        with self.j.tx() as db:
            cur = db.execute(
                "INSERT INTO intents(deployment_id, session, decision_ts, seq, intent_json, "
                "base_cid) VALUES(?,?,?,?,?,?)",
                (
                    dep,
                    session,
                    rep.submitted_at.isoformat(),
                    0,
                    jo.intent_to_json(intent),
                    rep.client_order_id,
                ),
            )
            jo.add_order(
                self.j,
                int(cur.lastrowid or 0),
                dep,
                rep.client_order_id,
                parts.attempt if parts else 0,
                rep.qty,
                limit,
                session,
                self.clock.now(),
            )

    def _leg(self, dep: str, symbol: str, side: Side, ratio: int, ac: AssetClass) -> Leg:
        if ac is not AssetClass.US_OPTION:
            return Leg(symbol, side, ratio, ac)
        closing = self.ledger.qty(dep, symbol) * (1 if side is Side.BUY else -1) < 0
        name = f"{side.value}_to_{'close' if closing else 'open'}"
        return Leg(symbol, side, ratio, ac, PositionIntent(name))

    def _activities(self) -> int:
        since = self.j.get_meta("activities_since")
        acts = self.broker.activities(
            None if since is None else datetime.fromisoformat(since).date()
        )
        booked = 0
        for act in acts:
            fills = activity_fills(act, self.ledger, self.clock.now())
            with self.j.tx():
                if not jo.record_activity(self.j, act, self.clock.now()):
                    continue
                new = jo.record_fills(self.j, fills)
            self.manager.book(new)
            booked += 1
        if acts:  # watermark from the broker's dates (a week of overlap; booking is idempotent)
            mark = max(a.day for a in acts) - timedelta(days=7)
            self.j.set_meta("activities_since", mark.isoformat())
        return booked

    def _book_external(
        self, diffs: dict[str, tuple[float, float]], positions: list[PositionReport]
    ) -> None:
        by_symbol = {p.symbol: p for p in positions}
        now = self.clock.now()
        fills = []
        for symbol, (local, broker) in diffs.items():
            p = by_symbol.get(symbol)
            ac = p.asset_class.value if p else _asset_class(symbol)
            fills.append(
                jo.FillRow(
                    f"ext:{now.isoformat()}:{symbol}",
                    None,
                    EXTERNAL,
                    symbol,
                    ac,
                    broker - local,
                    p.avg_entry_price if p else 0.0,
                    now,
                    "external",
                )
            )
        self.manager.book(jo.record_fills(self.j, fills))


def compare(
    local: dict[str, float], positions: list[PositionReport]
) -> dict[str, tuple[float, float]]:
    """Symbols whose local quantity differs from the broker's: ``symbol -> (local, broker)``."""
    broker: dict[str, float] = {}
    for p in positions:
        broker[p.symbol] = broker.get(p.symbol, 0.0) + p.qty
    return {
        s: (local.get(s, 0.0), broker.get(s, 0.0))
        for s in sorted(set(local) | set(broker))
        if abs(local.get(s, 0.0) - broker.get(s, 0.0)) > EPS
    }


def activity_fills(act: ActivityReport, ledger: Ledger, now: datetime) -> list[jo.FillRow]:
    """Fills that close the option position (and deliver shares on exercise/assignment)."""
    sym = occ.parse(act.symbol)
    holders = ledger.holders(act.symbol)  # nobody local holds it: nothing to book
    left = abs(act.qty) or sum(abs(q) for _, q in holders)
    out = []
    for dep, held in holders:
        take = min(abs(held), left)
        left -= take
        if take <= EPS:
            continue
        signed = take if held > 0 else -take  # the contracts being removed
        base = f"act:{act.activity_id}:{dep}"
        out.append(
            jo.FillRow(
                f"{base}:{act.symbol}",
                None,
                dep,
                act.symbol,
                AssetClass.US_OPTION.value,
                -signed,
                0.0,
                now,
                act.activity_type.lower(),
            )
        )
        if act.activity_type in ("OPASN", "OPEXC"):
            shares = Holding.of(act.symbol, AssetClass.US_OPTION).delivered_shares(signed)
            out.append(
                jo.FillRow(
                    f"{base}:{sym.root}",
                    None,
                    dep,
                    sym.root,
                    AssetClass.US_EQUITY.value,
                    shares,
                    sym.strike,
                    now,
                    act.activity_type.lower(),
                )
            )
    return out


def _asset_class(symbol: str) -> str:
    try:
        occ.parse(symbol)
    except ValueError:
        return AssetClass.US_EQUITY.value
    return AssetClass.US_OPTION.value
