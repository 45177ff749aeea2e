"""The sending step: every pending order through the risk engine, then to the broker."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from contracts.limits import AccountLimits, RiskLimits
from live.book import Ledger
from live.clock import Clock
from live.deployments.active_set import DeploymentSet
from live.journal import orders as jo
from live.journal.store import Journal
from live.orders.liquidate import FLATTEN_TAG
from live.orders.manager import OrderManager, ticket_for
from live.orders.reports import AccountReport, OrderStatus, Quote
from live.orders.send_window import send_window_closed
from live.risk.engine import RiskDecision, RiskEngine, TradingState
from live.risk.inputs import RiskInputs


@dataclass(frozen=True, slots=True)
class SendView:
    """What the runner knows this cycle that the risk checks read."""

    session: str | None  # the latest snapshot's session (None: no data yet)
    quotes: Mapping[str, Quote]
    account: AccountReport | None
    peaks: Mapping[str, float]


class Submitter:
    """Risk-checks pending orders, marks and sends them, and times decision -> submit.

    Args:
        journal: The runner's journal.
        risk: The risk engine every order goes through.
        manager: Marks and sends orders.
        deployments: The active deployments (their limits and capital).
        ledger: The books the risk rules read.
        clock: The runner's clock.
        notify: The notifier's ``notify(kind, message, level)``.
        account_limits: The account-wide limits.
        market_now: The market's time now (the send window's clock).
    """

    def __init__(
        self, journal: Journal, risk: RiskEngine, manager: OrderManager,
        deployments: DeploymentSet, ledger: Ledger, clock: Clock, notify: Callable[..., None],
        account_limits: AccountLimits, market_now: Callable[[], datetime],
    ) -> None:  # fmt: skip
        self.j, self.risk, self.manager, self.deployments = journal, risk, manager, deployments
        self.ledger, self.clock, self.notify = ledger, clock, notify
        self.account_limits, self.market_now = account_limits, market_now
        self.decided_at: dict[str, float] = {}  # client id -> monotonic time of its decision
        self.latencies: list[float] = []  # decision-to-submit seconds
        # another reason an order's send window closed (the runner's minute-decision window)
        self.also_late: Callable[[jo.OrderRow], str | None] = lambda row: None

    def track(self, stamps: Iterable[tuple[str, float]]) -> None:
        """Remember when each new order's decision was made (``(client id, monotonic)``)."""
        self.decided_at.update(stamps)

    def on_send(self, cid: str) -> None:
        """Record the decision-to-submit latency of order ``cid`` (the manager's send hook)."""
        started = self.decided_at.pop(cid, None)
        if started is not None:
            self.latencies.append(self.clock.monotonic() - started)

    def prepare(self, view: SendView) -> list[jo.OrderRow]:
        """Risk-check every pending order; journal refusals and mark the approved ones
        ``submitting`` (joins the caller's transaction, so a decision, its verdicts and the
        write-ahead marks can share one durable commit)."""
        pending = jo.list_orders(self.j, [OrderStatus.PENDING_SUBMIT])
        if self.risk.state() is TradingState.HALTED:  # account halted: only liquidation moves;
            pending = [r for r in pending if r.intent.tag == FLATTEN_TAG]  # the rest waits
        if not pending:
            return []
        with self.j.tx():
            approved = self.approve(pending, view)
            self.manager.mark_submitting(approved)
        return approved

    def send(self, approved: list[jo.OrderRow]) -> int:
        """Send orders already marked ``submitting`` (positions-cache writes batched at the
        end); returns how many."""
        if not approved:
            return 0
        self.manager.defer_positions = True
        try:
            for row in approved:
                self.manager.send(row, marked=True)
        finally:
            self.manager.defer_positions = False
            self.manager.flush_positions()
        return len(approved)

    def approve(self, pending: list[jo.OrderRow], view: SendView) -> list[jo.OrderRow]:
        """Risk-check ``pending``: refusals and expired ones are journaled (one commit), the
        rest returned in order; stops at the first throttled one."""
        open_by = Counter(r.deployment_id for r in jo.open_orders(self.j))
        now = self.market_now()
        inputs = RiskInputs(
            self.ledger, view.quotes, view.account, self.account_limits, open_by, now,
            self.deployments.capital, view.peaks,
        )  # fmt: skip
        approved = []
        with self.j.tx():  # one commit for every refusal of this pass
            for row in pending:
                late = send_window_closed(row, view.session, now) or self.also_late(row)
                if late is not None:  # the same rule expires an unacknowledged order after a crash
                    self._refuse(
                        row, "runner", OrderStatus.UNSENT_EXPIRED, f"expired unsent: {late}"
                    )
                    continue
                dep = self.deployments.active.get(row.deployment_id)
                limits = dep.manifest.risk_limits if dep is not None else RiskLimits()
                ticket = ticket_for(row)
                liquidation = row.intent.tag == FLATTEN_TAG
                verdict = self.risk.check(
                    ticket, inputs.context(row.deployment_id, limits), liquidation
                )
                if verdict.throttled:
                    break  # the rest waits for the next cycle
                if not verdict.ok:
                    self._reject(row, verdict)
                    continue
                inputs.sent(ticket)
                approved.append(row)
        return approved

    def _reject(self, row: jo.OrderRow, verdict: RiskDecision) -> None:
        note = f"{verdict.rule}: {verdict.reason}"
        self._refuse(row, "risk", OrderStatus.RISK_REJECTED, note)
        self.notify("risk_rejected", f"{row.client_order_id} {note}", "warning")

    def _refuse(self, row: jo.OrderRow, source: str, status: OrderStatus, note: str) -> None:
        jo.update_order(
            self.j, row.client_order_id, self.clock.now(), source, status=status, note=note
        )
