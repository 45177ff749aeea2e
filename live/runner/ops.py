"""Runner operations outside the order path: control commands, P&L checks and health."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from live.clock import NEW_YORK
from live.journal import orders as jo
from live.orders.liquidate import closing_intents
from live.risk.engine import TradingState
from live.runner import control as runner_control

if TYPE_CHECKING:
    from live.runner.core import Runner


log = logging.getLogger("live.runner")
DETAILS = "risk_details"  # journal meta: reason key -> the text that names its cause


def check_halt_file(runner: Runner) -> None:
    """The kill switch that needs no journal (:mod:`live.runner.control`): while the halt file
    exists, HALTED; open orders are cancelled once per halt file. Runs before anything touches
    the journal, and survives a journal that fails."""
    path = runner_control.halt_path(runner.config.home)
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    try:
        runner.risk.set("halt_file", TradingState.HALTED)
    except Exception as exc:  # noqa: BLE001 - held in memory first; journaling it may fail
        log.error("halt file %s: HALTED; journaling the reason failed: %s", path, exc)
    stamp = (st.st_ino, st.st_mtime_ns)
    if runner.halt_stamp == stamp:
        return
    runner.halt_stamp = stamp
    try:
        cancelled = runner.manager.cancel_all()
    except Exception as exc:  # noqa: BLE001 - a damaged journal must not stop the halt
        log.error("halt file %s: HALTED; cancelling open orders failed: %s", path, exc)
        cancelled = -1
    asked = f"cancel requested for {cancelled} open orders" if cancelled >= 0 else "cancel failed"
    runner.notifier.notify("command_halt", f"halt file {path}: halted; {asked}", "warning")


def halt_for(runner: Runner, key: str, detail: str) -> None:
    """HALTED for reason ``key``, its text journaled (``live status`` shows both)."""
    runner.risk.set(key, TradingState.HALTED)
    details = runner.j.get_meta(DETAILS, {})
    if details.get(key) != detail:
        details[key] = detail
        runner.j.set_meta(DETAILS, details)
        runner.notifier.notify(f"halted_{key}", detail, "error")


def clear_reason(runner: Runner, key: str) -> None:
    """Drop reason ``key`` and its journaled text."""
    runner.risk.clear(key)
    details = runner.j.get_meta(DETAILS, {})
    if details.pop(key, None) is not None:
        runner.j.set_meta(DETAILS, details)


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
            runner.j.set_meta(DETAILS, {})
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
