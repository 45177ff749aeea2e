"""Daily-loss and drawdown tracking: the equity peaks and each deployment's day-start equity."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from contracts.limits import AccountLimits
from live.book import Ledger
from live.clock import NEW_YORK
from live.deployments.manifests import Deployment
from live.journal.store import Journal
from live.orders.reports import AccountReport, Quote
from live.risk.engine import RiskEngine

PEAKS = "peaks"  # journal meta: scope ("" is the account) -> its highest equity seen


class PnlGuard:
    """Owns the equity peaks (persisted, so a drawdown survives a restart) and each
    deployment's equity at the start of its New York day, and feeds both to the risk engine.

    Args:
        journal: Where the peaks persist (meta ``peaks``).
        risk: The engine whose ``daily_loss`` and ``drawdown`` reasons the checks set.
        account_limits: The account-wide limits.
    """

    def __init__(self, journal: Journal, risk: RiskEngine, account_limits: AccountLimits) -> None:
        self.j, self.risk, self.account_limits = journal, risk, account_limits
        self.peaks: dict[str, float] = journal.get_meta(PEAKS, {})
        self.day_start: dict[str, tuple[str, float]] = {}  # dep id -> (NY date, equity)

    def update(
        self, ledger: Ledger, deployments: Iterable[Deployment], account: AccountReport | None,
        quotes: Mapping[str, Quote], now: datetime,
    ) -> None:  # fmt: skip
        """Daily loss and drawdown checks for the account and every deployment.

        Args:
            ledger: The deployments' books.
            deployments: The active deployments.
            account: The broker's account (None: not known yet; its check is skipped).
            quotes: The marks for the books.
            now: The time now (its New York date starts a deployment's day).
        """
        today = now.astimezone(NEW_YORK).date().isoformat()
        peaks = dict(self.peaks)
        if account is not None:
            eq = account.equity
            peaks[""] = max(peaks.get("", 0.0), eq)
            self.risk.on_pnl(self.account_limits, eq, account.last_equity, peaks[""])
        for dep in deployments:
            eq = ledger.book(dep.id, dep.manifest.capital, quotes).equity
            day, start = self.day_start.get(dep.id, ("", eq))
            if day != today:
                self.day_start[dep.id] = (today, eq)
                start = eq
            peaks[dep.id] = max(peaks.get(dep.id, dep.manifest.capital), eq)
            self.risk.on_pnl(dep.manifest.risk_limits, eq, start, peaks[dep.id], dep.id)
        if peaks != self.peaks:
            self.peaks = peaks
            self.j.set_meta(PEAKS, peaks)
