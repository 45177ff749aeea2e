"""Runner operations outside the order path: control commands, P&L checks and health."""

from __future__ import annotations

from typing import TYPE_CHECKING

from live import journal_orders as jo
from live.clock import NEW_YORK
from live.liquidate import closing_intents
from live.risk import TradingState

if TYPE_CHECKING:
    from live.runner import Runner


def process_commands(runner: Runner) -> None:
    """Apply queued control commands: ``halt``, ``flatten``, ``resume``."""
    for cmd in runner.j.pending_commands():
        name = cmd["command"]
        if name == "halt":
            runner.risk.set("kill_switch", TradingState.HALTED)
            result = f"halted; cancel requested for {runner.manager.cancel_all()} open orders"
        elif name == "flatten":
            runner.risk.set("flatten", TradingState.HALTED)
            runner.manager.cancel_all()
            result = f"flattening: {liquidate(runner)} closing orders"
        else:
            runner.risk.clear_all()
            result = "resumed"
        runner.j.finish_command(cmd["id"], runner.clock.now(), result)
        runner.notifier.notify(f"command_{name}", result, "warning")


def liquidate(runner: Runner) -> int:
    """Journal one closing market order per position (``tag="flatten"``)."""
    now = runner.clock.now()
    batches = closing_intents(runner.ledger, now)
    with runner.j.tx():
        for dep, tickets in batches.items():
            jo.record_decision(runner.j, dep, f"flatten:{now.isoformat()}", now, tickets, now)
    return sum(len(t) for t in batches.values())


def update_pnl(runner: Runner) -> None:
    """Daily loss and drawdown checks for the account and every deployment."""
    today = runner.clock.now().astimezone(NEW_YORK).date().isoformat()
    peaks = dict(runner.peaks)
    if runner.account is not None:
        eq = runner.account.equity
        peaks[""] = max(peaks.get("", 0.0), eq)
        runner.risk.on_pnl(runner.config.account_limits, eq, runner.account.last_equity, peaks[""])
    for dep in runner.deployments.active.values():
        eq = runner.ledger.book(dep.id, dep.manifest.capital, runner.quotes).equity
        day, start = runner.day_start.get(dep.id, ("", eq))
        if day != today:
            runner.day_start[dep.id] = (today, eq)
            start = eq
        peaks[dep.id] = max(peaks.get(dep.id, dep.manifest.capital), eq)
        runner.risk.on_pnl(dep.manifest.risk_limits, eq, start, peaks[dep.id], dep.id)
    if peaks != runner.peaks:
        runner.peaks = peaks
        runner.j.set_meta("peaks", peaks)


def publish_health(runner: Runner, counts: dict[str, int] | None, error: str = "") -> None:
    """Refresh what ``/health`` serves."""
    runner.status.update(
        state=runner.risk.state().value, reasons=runner.risk.reasons(), broker=runner.broker.name,
        paper=runner.broker.paper, cycles=runner.cycles, last_cycle=runner.j.last_cycle(),
        last_counts=counts, last_error=error, deployments=len(runner.deployments.active),
        account_limits=runner.config.account_limits.model_dump(mode="json"),
        limits={d.id: d.manifest.risk_limits.model_dump(mode="json")
                for d in list(runner.deployments.active.values())[:200]},
        stream=vars(runner.updates.stats) if runner.updates is not None else None,
    )  # fmt: skip
