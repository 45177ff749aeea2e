"""The live runner: one process, one cycle at a time, aligned to the market clock.

Each cycle: the halt file (checked before the journal, see :mod:`live.runner.control`) ->
control commands (halt/flatten/resume) -> streamed order updates (Alpaca's trade
updates, also applied every second between cycles) -> refresh open orders -> periodic
reconciliation -> deployment changes (between cycles only, never for a deployment with open
orders) -> a reconciliation before the first decision on each new session's data (overnight
assignments and expiries reach the book first) -> when the market is open and trading is not
halted, ``decide()`` for every deployment
that has not decided on the latest session (the decision and its orders are journaled in one
commit) -> every pending order through the risk engine and to the broker -> reprice stale limit
orders -> daily-loss/drawdown checks. Start-up rebuilds positions from the journal's fills and
reconciles with the broker before anything trades; any failure there leaves the runner HALTED.
An unreadable lake partition halts it too (the journaled reason names the file), until the
partition reads again. An order the broker never acknowledged is sent within its send window
or expired (:func:`live.orders.send_window.send_window_closed`), never sent late.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from contracts import paths
from live.book import Ledger
from live.brokers.base import Broker
from live.clock import Clock, MarketClock
from live.deployments.active_set import DeploymentSet
from live.errors import BrokerError
from live.journal import orders as jo
from live.journal.store import Journal
from live.market.snapshot import LakeDataError, SnapshotProvider, snapshot_quotes
from live.notify import FanOut
from live.orders.liquidate import FLATTEN_TAG
from live.orders.manager import OrderManager
from live.orders.reconcile import Reconciler
from live.orders.reports import OrderStatus, Quote
from live.orders.send_window import send_window_closed
from live.risk.engine import RiskEngine, TradingState
from live.runner import ops as runner_ops
from live.runner.config import RunnerConfig
from live.runner.crash import CrashPoints
from live.runner.health import HealthStatus
from live.runner.lock import RunnerLock
from live.runner.strategy_step import decide_all
from live.runner.submit_step import prepare, send_approved
from strategies.models import MarketSnapshot

if TYPE_CHECKING:
    from live.brokers.alpaca_stream import TradeUpdateStream

log = logging.getLogger("live.runner")
OPEN_STATES = [s for s in OrderStatus if not s.terminal]


class Runner:
    """The runner process's state and cycle (see the module docstring)."""

    def __init__(
        self,
        config: RunnerConfig,
        journal: Journal,
        broker: Broker,
        clock: Clock,
        snapshots: SnapshotProvider,
        notifier: FanOut,
        crash: Callable[[str], None] | None = None,
        updates: TradeUpdateStream | None = None,
    ) -> None:
        self.config, self.j, self.broker, self.clock = config, journal, broker, clock
        self.updates = updates  # the broker's trade-update stream, when it has one
        self.snapshots, self.notifier = snapshots, notifier
        self.crash = crash or CrashPoints()
        self.ledger = Ledger()
        self.risk = RiskEngine(
            config.account_limits,
            clock,
            journal.get_meta("risk_reasons", {}),
            on_change=lambda r: journal.set_meta("risk_reasons", r),
        )
        self.manager = OrderManager(
            journal, broker, self.ledger, clock, self.crash, notifier.notify
        )
        self.reconciler = Reconciler(
            journal, broker, self.manager, self.ledger, clock, self.crash, config.adopt_external
        )
        self.deployments = DeploymentSet(
            paths.deployments_dir(config.home), journal, clock, notifier.notify, snapshots.symbols
        )
        self.status = HealthStatus()
        self.snapshot: MarketSnapshot | None = None
        self.quotes: dict[str, Quote] = {}
        self.account: Any = None
        self.market: MarketClock | None = None  # the broker's clock at the last refresh
        self._market_mono = 0.0  # clock.monotonic() when ``market`` was read
        self.halt_stamp: tuple[int, int] | None = None  # the halt file already acted on
        self.lock: RunnerLock | None = None  # the data-root lock (live.runner.build takes it)
        self.cycles = 0
        self.peaks: dict[str, float] = journal.get_meta("peaks", {})
        self.day_start: dict[str, tuple[str, float]] = {}
        self.failures: dict[str, int] = {}  # consecutive broker failures per call
        self.decided_at: dict[str, float] = {}  # client id -> monotonic time of its decision
        self.latencies: list[float] = []  # decision-to-submit seconds
        self.manager.on_send = self._on_send
        self.reconciling = False
        self.manager.may_resend = lambda row: (
            not self.reconciling
            and self.market is not None  # without the market's time no send window is known
            and (row.intent.tag == FLATTEN_TAG or self.risk.state() is not TradingState.HALTED)
        )
        self.manager.too_late = self.too_late

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Rebuild positions from fills, load deployments and reconcile (HALTED on failure)."""
        runner_ops.check_halt_file(self)
        self.ledger.rebuild(jo.all_fills(self.j))
        jo.save_positions(self.j, self.ledger.positions_map(), self.clock.now())
        self.deployments.refresh(self._busy())
        try:
            self._refresh_market(self._watched("clock", self.clock.market))
        except BrokerError as exc:
            self.notifier.notify("broker_error", f"market clock: {exc}", "error")
        self.reconcile(full=True)
        runner_ops.publish_health(self, None)

    def run(
        self, cycles: int | None = None, should_stop: Callable[[], bool] = lambda: False
    ) -> None:
        """Start, then run ``cycles`` cycles (forever when None) aligned to the cycle period."""
        self.start()
        done = 0
        while (cycles is None or done < cycles) and not should_stop():
            self.cycle()
            done += 1
            pause = self._pause() if cycles is None or done < cycles else 0.0
            chunk = max(self.config.cycle_seconds, 1.0) if self.config.broker == "sim" else 1.0
            while pause > 0 and not should_stop():  # a stop request is seen within a chunk
                self.clock.sleep(min(pause, chunk))
                pause -= chunk
                self._between_cycles()
        self.notifier.flush(2.0)
        if self.updates is not None:
            self.updates.close()

    def _between_cycles(self) -> None:
        """Book streamed order changes while waiting for the next cycle (fills within ~1 s)."""
        if self.updates is None:
            return
        try:
            self.apply_updates()
        except Exception as exc:  # noqa: BLE001 - the next cycle's poll is the safety net
            log.warning("applying streamed order updates failed: %s", exc, exc_info=True)

    def apply_updates(self) -> int:
        """Apply every streamed order report of one of our orders; returns new fills."""
        if self.updates is None:
            return 0
        new = 0
        for report in self.updates.drain():
            if jo.get_order(self.j, report.client_order_id) is not None:  # ours (else: reconcile)
                new += self.manager.apply(report, "stream")
        return new

    def _pause(self) -> float:
        period = self.config.cycle_seconds
        now = self.clock.now().timestamp()
        pause = period - (now % period) if period > 0 else 0.0
        if self.config.broker == "sim":  # a simulated clock jumps to the next open, exactly:
            market = self.clock.market()  # never past it (every session gets its decision)
            if not market.is_open:
                pause = (market.next_open - self.clock.now()).total_seconds()
        return pause

    # -- one cycle -----------------------------------------------------------------------------
    def cycle(self) -> dict[str, int]:
        """Run one cycle; a failing step is reported and the rest still runs."""
        self.cycles += 1
        runner_ops.check_halt_file(self)  # first: the kill switch must not need the journal
        seq = self.j.start_cycle(self.clock.now(), self.risk.state().value)
        counts: dict[str, int] = {"deployments": len(self.deployments.active)}
        errors: list[str] = []
        market: MarketClock | None = None

        def step(name: str, fn: Callable[[], Any]) -> Any:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - one failing step must not stop the cycle
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                log.warning("cycle step %s failed: %s", name, exc, exc_info=True)
                self.notifier.notify("cycle_error", errors[-1], "error")
                return None

        step("commands", lambda: runner_ops.process_commands(self))
        step("stream", self.apply_updates)
        step("poll", self._poll)
        if self.cycles % self.config.reconcile_every == 0:
            step("reconcile", lambda: self.reconcile(full=False))
        step("deployments", lambda: self.deployments.refresh(self._busy()))
        market = step("clock", lambda: self._watched("clock", self.clock.market))
        if market is not None:
            step("market_data", lambda: self._refresh_market(market))
        step("session_reconcile", lambda: self._reconcile_for_session(market))
        approved = step("decide", lambda: self._decide_and_prepare(market, counts)) or []
        counts["submitted"] = step("submit", lambda: send_approved(self, approved)) or 0
        step("reprice", lambda: self.manager.reprice_stale(self.quotes, self.config.stale_limit_s))
        step("pnl", lambda: runner_ops.update_pnl(self))
        self.j.finish_cycle(
            seq, self.clock.now(), self.risk.state().value, counts, "; ".join(errors)
        )
        runner_ops.publish_health(self, counts, "; ".join(errors))
        return counts

    def _refresh_market(self, market: MarketClock) -> None:
        self.market, self._market_mono = market, self.clock.monotonic()
        try:
            snap = self.snapshots.latest(market.timestamp)
        except LakeDataError as exc:  # never decide on data with a hole in it
            runner_ops.halt_for(self, "lake_data", str(exc))
            return
        runner_ops.clear_reason(self, "lake_data")
        if snap is not None and snap is not self.snapshot:
            self.snapshot, self.quotes = snap, snapshot_quotes(snap)

    def market_now(self) -> datetime:
        """The market's time now: its clock at the last refresh plus the time since."""
        if self.market is None:
            return self.clock.now()
        elapsed = self.clock.monotonic() - self._market_mono
        return self.market.timestamp + timedelta(seconds=max(elapsed, 0.0))

    def too_late(self, row: jo.OrderRow) -> str | None:
        """Why an order the broker never acknowledged may no longer be sent (None: it may, or
        the market's time is unknown and nothing is sent yet)."""
        if self.market is None:
            return None
        session = self.snapshot.session.isoformat() if self.snapshot is not None else None
        return send_window_closed(row, session, self.market_now())

    def close(self) -> None:
        """Close the journal and give the data-root lock back."""
        self.j.close()
        if self.lock is not None:
            self.lock.release()

    def quote(self, symbol: str) -> Quote | None:
        """The latest reference quote (the simulated broker fills against these)."""
        return self.quotes.get(symbol)

    def _busy(self) -> set[str]:
        marks = ",".join("?" * len(OPEN_STATES))
        rows = self.j.rows(
            f"SELECT DISTINCT deployment_id FROM orders WHERE status IN ({marks})",
            *[s.value for s in OPEN_STATES],
        )
        return {r[0] for r in rows}

    def reconcile(self, full: bool) -> bool:
        """Reconcile; success clears a reconciliation halt, failure sets one."""
        self.reconciling = True
        try:
            report = self.reconciler.run(full)
        except Exception as exc:  # noqa: BLE001 - any failure fails closed
            self.risk.set("reconcile", TradingState.HALTED)
            self.notifier.notify("reconcile_failed", f"{type(exc).__name__}: {exc}", "error")
            log.error("reconciliation failed, trading HALTED: %s", exc)
            return False
        finally:
            self.reconciling = False
        self.account = report.account
        self.risk.clear("reconcile")
        return True

    def _reconcile_for_session(self, market: MarketClock | None) -> None:
        """Reconcile once before the first decision on a new session's data, so overnight
        assignments, exercises and expiries are in the book the strategy sees (a failure
        halts trading, as any failed reconciliation does)."""
        if market is None or not market.is_open or self.snapshot is None:
            return
        session = self.snapshot.session.isoformat()
        if self.j.get_meta("reconciled_session") == session:
            return
        if self.reconcile(full=False):
            self.j.set_meta("reconciled_session", session)

    def _poll(self) -> None:
        self.broker.step()
        self._watched("orders", self.manager.poll)
        self.account = self._watched("account", self.broker.account)

    def _watched(self, name: str, fn: Callable[[], Any]) -> Any:
        """Call the broker; three consecutive failures of any call halt trading until all of
        them succeed again."""
        try:
            out = fn()
        except BrokerError:
            self.failures[name] = self.failures.get(name, 0) + 1
            if self.failures[name] >= 3:
                self.risk.set("broker_unreachable", TradingState.HALTED)
            raise
        self.failures[name] = 0
        if not any(self.failures.values()):
            self.risk.clear("broker_unreachable")
        return out

    # -- deciding and sending ------------------------------------------------------------------
    def _decide_and_prepare(
        self, market: MarketClock | None, counts: dict[str, int]
    ) -> list[jo.OrderRow]:
        """Decide (market open, not halted), risk-check and mark every pending order, all in
        one durable commit; a failure rolls the whole step back."""
        with self.j.tx():
            if (
                market is not None
                and market.is_open
                and self.risk.state() is not TradingState.HALTED
            ):
                counts["intents"] = self._decide(market)
            return prepare(self)

    def _decide(self, market: MarketClock) -> int:
        if self.snapshot is None:
            return 0
        stamped = decide_all(
            self.j,
            self.deployments,
            self.ledger,
            self.risk,
            self.quotes,
            self.peaks,
            self._busy(),
            self.clock,
            self.snapshot,
            market.timestamp,
            self.notifier.notify,
        )
        self.decided_at.update(stamped)
        return len(stamped)

    def _on_send(self, cid: str) -> None:
        started = self.decided_at.pop(cid, None)
        if started is not None:
            self.latencies.append(self.clock.monotonic() - started)
