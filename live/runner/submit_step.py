"""The sending step: every pending order through the risk engine, then to the broker."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from contracts.limits import RiskLimits
from live.journal import orders as jo
from live.orders.liquidate import FLATTEN_TAG
from live.orders.manager import ticket_for
from live.orders.reports import OrderStatus
from live.orders.send_window import send_window_closed
from live.risk.engine import TradingState
from live.risk.inputs import RiskInputs

if TYPE_CHECKING:
    from live.runner.core import Runner


def prepare(runner: Runner) -> list[jo.OrderRow]:
    """Risk-check every pending order; journal refusals and mark the approved ones
    ``submitting`` (joins the caller's transaction, so a decision, its verdicts and the
    write-ahead marks can share one durable commit)."""
    pending = jo.list_orders(runner.j, [OrderStatus.PENDING_SUBMIT])
    if runner.risk.state() is TradingState.HALTED:  # account halted: only liquidation moves;
        pending = [r for r in pending if r.intent.tag == FLATTEN_TAG]  # the rest waits
    if not pending:
        return []
    with runner.j.tx():
        approved = approve(runner, pending)
        runner.manager.mark_submitting(approved)
    return approved


def send_approved(runner: Runner, approved: list[jo.OrderRow]) -> int:
    """Send orders already marked ``submitting`` (positions-cache writes batched at the end)."""
    if not approved:
        return 0
    runner.manager.defer_positions = True
    try:
        for row in approved:
            runner.manager.send(row, marked=True)
    finally:
        runner.manager.defer_positions = False
        runner.manager.flush_positions()
    return len(approved)


def approve(runner: Runner, pending: list[jo.OrderRow]) -> list[jo.OrderRow]:
    """Risk-check ``pending``: refusals and expired ones are journaled (one commit), the rest
    returned in order; stops at the first throttled one."""
    session = runner.snapshot.session.isoformat() if runner.snapshot else None
    open_by = Counter(r.deployment_id for r in jo.open_orders(runner.j))
    now = runner.market_now()
    inputs = RiskInputs(
        runner.ledger,
        runner.quotes,
        runner.account,
        runner.config.account_limits,
        open_by,
        now,
        runner.deployments.capital,
        runner.peaks,
    )
    approved = []
    with runner.j.tx():  # one commit for every refusal of this pass
        for row in pending:
            liquidation = row.intent.tag == FLATTEN_TAG
            late = send_window_closed(row, session, now)
            if late is not None:  # the same rule expires an unacknowledged order after a crash
                jo.update_order(
                    runner.j,
                    row.client_order_id,
                    runner.clock.now(),
                    "runner",
                    status=OrderStatus.UNSENT_EXPIRED,
                    note=f"expired unsent: {late}",
                )
                continue
            dep = runner.deployments.active.get(row.deployment_id)
            limits = dep.manifest.risk_limits if dep is not None else RiskLimits()
            ticket = ticket_for(row)
            verdict = runner.risk.check(
                ticket, inputs.context(row.deployment_id, limits), liquidation
            )
            if verdict.throttled:
                break  # the rest waits for the next cycle
            if not verdict.ok:
                jo.update_order(
                    runner.j,
                    row.client_order_id,
                    runner.clock.now(),
                    "risk",
                    status=OrderStatus.RISK_REJECTED,
                    note=f"{verdict.rule}: {verdict.reason}",
                )
                runner.notifier.notify(
                    "risk_rejected",
                    f"{row.client_order_id} {verdict.rule}: {verdict.reason}",
                    "warning",
                )
                continue
            inputs.sent(ticket)
            approved.append(row)
    return approved
