"""The P&L guard alone: it owns the day-start equity and the persisted peaks it feeds the risk
engine (a real engine and a real journal, no runner)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from contracts.limits import AccountLimits
from live.book import Ledger
from live.clock import SimClock
from live.deployments.manifests import load_manifest
from live.journal import orders as jo
from live.journal.store import Journal
from live.orders.reports import AccountReport
from live.risk.engine import RiskEngine, TradingState
from live.runner.pnl_guard import PnlGuard
from tests.live.helpers import T0, deploy, limits, quote


def test_day_start_resets_each_new_york_day_and_peaks_survive_a_restart(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.sqlite")
    risk = RiskEngine(AccountLimits(), SimClock(T0), on_change=lambda r: j.set_meta("r", r))
    guard = PnlGuard(j, risk, AccountLimits())
    path = deploy(tmp_path, "ma-spy", risk_limits=limits(max_daily_loss=1_000.0, max_drawdown=0.2))
    deps = [load_manifest(path)]  # capital 100,000: 60,000 cash and 100 SPY bought at 400
    ledger = Ledger.from_fills([jo.FillRow("e1", None, "ma-spy", "SPY", "us_equity", 100, 400, T0)])

    def update(price: float, days: int = 0, account: AccountReport | None = None) -> None:
        guard.update(ledger, deps, account, {"SPY": quote(price)}, T0 + timedelta(days=days))

    update(400.0)
    assert guard.day_start == {"ma-spy": ("2024-03-01", 100_000.0)}
    update(385.0)  # 1,500 below the day's start: over the 1,000 daily loss
    assert risk.state("ma-spy") is TradingState.REDUCING
    assert guard.day_start["ma-spy"] == ("2024-03-01", 100_000.0)  # same day: start kept
    update(385.0, days=1)  # a new New York day starts at 98,500: no loss today
    assert guard.day_start["ma-spy"] == ("2024-03-02", 98_500.0)
    assert risk.state("ma-spy") is TradingState.ACTIVE
    assert guard.peaks == {"ma-spy": 100_000.0}  # the capital until equity passes it
    update(420.0, days=1, account=AccountReport(150_000.0, 149_000.0, 0.0, 0.0, 0.0))
    assert guard.peaks == {"": 150_000.0, "ma-spy": 102_000.0}
    assert j.get_meta("peaks") == guard.peaks  # persisted when they change

    restarted = PnlGuard(j, risk, AccountLimits())  # a new process reads the peaks back ...
    assert restarted.peaks == guard.peaks and restarted.day_start == {}  # ... not the day
    guard = restarted
    update(300.0, days=1)  # 90,000: 11.8% below the 102,000 peak, within 20%
    assert risk.state("ma-spy") is not TradingState.HALTED
    update(200.0, days=1)  # 80,000: 21.6% below the peak
    assert risk.state("ma-spy") is TradingState.HALTED
    assert guard.peaks["ma-spy"] == 102_000.0
    j.close()
