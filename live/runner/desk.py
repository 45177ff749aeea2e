"""The runner's control desk: the halt file, queued control commands and journaled halt reasons.

A :class:`ControlDesk` owns what the operator's controls change: the halt file already acted on
(so open orders are cancelled once per halt file) and the text that names each halt reason's
cause (journal meta ``risk_details``, which ``live status`` shows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from live.book import Ledger
from live.clock import Clock
from live.journal import orders as jo
from live.journal.store import Journal
from live.orders.liquidate import closing_intents
from live.orders.manager import OrderManager
from live.risk.engine import RiskEngine, TradingState
from live.runner import control as runner_control

log = logging.getLogger("live.runner")
DETAILS = "risk_details"  # journal meta: reason key -> the text that names its cause


class ControlDesk:
    """Applies the kill switch, control commands and named halts to the risk engine.

    Args:
        home: The data root (its halt file is ``<home>/live/HALT``).
        journal: The runner's journal (commands, reason details, flatten decisions).
        risk: The risk engine whose reasons the controls raise and clear.
        manager: Cancels open orders on a halt.
        ledger: The positions a ``flatten`` closes.
        clock: The runner's clock.
        notify: The notifier's ``notify(kind, message, level)``.
    """

    def __init__(
        self, home: Path, journal: Journal, risk: RiskEngine, manager: OrderManager,
        ledger: Ledger, clock: Clock, notify: Callable[..., None],
    ) -> None:  # fmt: skip
        self.home, self.j, self.risk, self.manager = home, journal, risk, manager
        self.ledger, self.clock, self.notify = ledger, clock, notify
        self.halt_stamp: tuple[int, int] | None = None  # the halt file already acted on

    def check_halt_file(self) -> None:
        """The kill switch that needs no journal (:mod:`live.runner.control`): while the halt
        file exists, HALTED; open orders are cancelled once per halt file. Runs before anything
        touches the journal, and survives a journal that fails."""
        path = runner_control.halt_path(self.home)
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        try:
            self.risk.set("halt_file", TradingState.HALTED)
        except Exception as exc:  # noqa: BLE001 - held in memory first; journaling it may fail
            log.error("halt file %s: HALTED; journaling the reason failed: %s", path, exc)
        stamp = (st.st_ino, st.st_mtime_ns)
        if self.halt_stamp == stamp:
            return
        self.halt_stamp = stamp
        try:
            cancelled = self.manager.cancel_all()
        except Exception as exc:  # noqa: BLE001 - a damaged journal must not stop the halt
            log.error("halt file %s: HALTED; cancelling open orders failed: %s", path, exc)
            cancelled = -1
        asked = (
            f"cancel requested for {cancelled} open orders" if cancelled >= 0 else "cancel failed"
        )
        self.notify("command_halt", f"halt file {path}: halted; {asked}", "warning")

    def halt_for(self, key: str, detail: str) -> None:
        """HALTED for reason ``key``, its text journaled (``live status`` shows both)."""
        self.risk.set(key, TradingState.HALTED)
        details = self.j.get_meta(DETAILS, {})
        if details.get(key) != detail:
            details[key] = detail
            self.j.set_meta(DETAILS, details)
            self.notify(f"halted_{key}", detail, "error")

    def clear_reason(self, key: str) -> None:
        """Drop reason ``key`` and its journaled text."""
        self.risk.clear(key)
        details = self.j.get_meta(DETAILS, {})
        if details.pop(key, None) is not None:
            self.j.set_meta(DETAILS, details)

    def process_commands(self) -> None:
        """Apply queued control commands: ``halt``, ``flatten``, ``resume``."""
        for cmd in self.j.pending_commands():
            name = cmd["command"]
            if name == "halt":
                self.risk.set("kill_switch", TradingState.HALTED)
                result = f"halted; cancel requested for {self.manager.cancel_all()} open orders"
            elif name == "flatten":
                self.risk.set("flatten", TradingState.HALTED)
                self.manager.cancel_all()
                result = f"flattening: {self.liquidate()} closing orders"
            else:
                self.risk.clear_all()
                self.j.set_meta(DETAILS, {})
                result = "resumed"
            self.j.finish_command(cmd["id"], self.clock.now(), result)
            self.notify(f"command_{name}", result, "warning")

    def liquidate(self) -> int:
        """Journal one closing market order per position (``tag="flatten"``)."""
        now = self.clock.now()
        batches = closing_intents(self.ledger, now)
        with self.j.tx():
            for dep, tickets in batches.items():
                jo.record_decision(self.j, dep, f"flatten:{now.isoformat()}", now, tickets, now)
        return sum(len(t) for t in batches.values())
