"""Reconciliation as the runner runs it: fail closed, and once per new session's data."""

from __future__ import annotations

import logging
from collections.abc import Callable

from live.journal.store import Journal
from live.orders.reconcile import Reconciler, ReconcileReport
from live.risk.engine import RiskEngine, TradingState

log = logging.getLogger("live.runner")
RECONCILED = "reconciled_session"  # journal meta: the last session reconciled before deciding


class ReconcileStep:
    """Runs the :class:`Reconciler`; owns whether a reconciliation is under way (no order is
    resent meanwhile) and which session was last reconciled before its first decision.

    Args:
        reconciler: Compares the journal with the broker and books the differences.
        journal: Where the reconciled session persists.
        risk: The engine whose ``reconcile`` reason a failure raises and a success clears.
        notify: The notifier's ``notify(kind, message, level)``.
    """

    def __init__(
        self, reconciler: Reconciler, journal: Journal, risk: RiskEngine,
        notify: Callable[..., None],
    ) -> None:  # fmt: skip
        self.reconciler, self.j, self.risk, self.notify = reconciler, journal, risk, notify
        self.running = False

    def run(self, full: bool) -> ReconcileReport | None:
        """Reconcile; success (the report) clears a reconciliation halt, failure (None) sets
        one."""
        self.running = True
        try:
            report = self.reconciler.run(full)
        except Exception as exc:  # noqa: BLE001 - any failure fails closed
            self.risk.set("reconcile", TradingState.HALTED)
            self.notify("reconcile_failed", f"{type(exc).__name__}: {exc}", "error")
            log.error("reconciliation failed, trading HALTED: %s", exc)
            return None
        finally:
            self.running = False
        self.risk.clear("reconcile")
        return report

    def for_session(self, session: str) -> ReconcileReport | None:
        """Reconcile once before the first decision on ``session``'s data, so overnight
        assignments, exercises and expiries are in the book the strategy sees; None when
        ``session`` was already reconciled or the reconciliation failed (which halts)."""
        if self.j.get_meta(RECONCILED) == session:
            return None
        report = self.run(full=False)
        if report is not None:
            self.j.set_meta(RECONCILED, session)
        return report
