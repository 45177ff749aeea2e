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

With ``market_data="stream"`` the runner also looks at its feed (:mod:`live.market.feed`) every
``intraday_poll_s`` between cycles (:meth:`Runner.intraday_tick`): new minute bars refresh order
states, marks and the daily-loss/drawdown checks at once, and each closed minute is decided on
by the "1m" deployments, once per (session, minute), sent in the same tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from contracts import paths
from live.book import Ledger
from live.brokers.base import Broker
from live.clock import NEW_YORK, Clock, MarketClock
from live.deployments.active_set import DeploymentSet, strategy_symbols
from live.deployments.manifests import Deployment
from live.errors import BrokerError
from live.journal import orders as jo
from live.journal.store import Journal
from live.market.feed import MarketFeed, session_hours
from live.market.snapshot import LakeDataError, SnapshotProvider, snapshot_quotes
from live.notify import FanOut
from live.orders.liquidate import FLATTEN_TAG
from live.orders.manager import OrderManager
from live.orders.reconcile import Reconciler
from live.orders.reports import Quote
from live.risk.engine import RiskEngine, TradingState
from live.runner.broker_watch import BrokerWatch
from live.runner.config import RunnerConfig
from live.runner.crash import CrashPoints
from live.runner.desk import ControlDesk
from live.runner.health import HealthStatus
from live.runner.intraday import MinuteDecisions, minute_key
from live.runner.lock import RunnerLock
from live.runner.market_time import MarketTime
from live.runner.metrics import MetricsSink, RunnerMetrics
from live.runner.pnl_guard import PnlGuard
from live.runner.reconcile_step import ReconcileStep
from live.runner.strategy_step import decide_all
from live.runner.submit_step import SendView, Submitter
from strategies.models import MINUTE, MarketSnapshot

if TYPE_CHECKING:
    from live.brokers.alpaca_stream import TradeUpdateStream

log = logging.getLogger("live.runner")


class Runner:
    """The runner process's cycle (see the module docstring), composed of the components that
    own the rest of its state: a :class:`MarketTime` (the market clock's last reading), a
    :class:`ControlDesk` (halt file, commands, halt reasons), a :class:`BrokerWatch` (broker
    failures), a :class:`ReconcileStep` (reconciling, the session reconciled), a
    :class:`Submitter` (risk checks, sends, latencies) and a :class:`PnlGuard` (equity peaks,
    day-start equity). It keeps the cycle and what the cycle reads: snapshot, quotes, account.
    """

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
        feed: MarketFeed | None = None,
    ) -> None:
        self.config, self.j, self.broker, self.clock = config, journal, broker, clock
        self.updates = updates  # the broker's trade-update stream, when it has one
        self.snapshots, self.notifier = snapshots, notifier
        self.feed = feed or MarketFeed(snapshots)  # lake: daily snapshots only
        self.crash = crash or CrashPoints()
        self.ledger = Ledger()
        self.risk = RiskEngine(
            config.account_limits, clock, journal.get_meta("risk_reasons", {}),
            on_change=self._risk_changed,
        )  # fmt: skip
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
        self.daily_quotes: dict[str, Quote] = {}  # the daily snapshot's (marks go over them)
        self.account: Any = None
        self.lock: RunnerLock | None = None  # the data-root lock (live.runner.build takes it)
        self.cycles = 0
        self.metrics = RunnerMetrics()  # served at /metrics; counts every notification too
        notifier.sinks.append(MetricsSink(self.metrics))
        self._latencies_seen = 0
        self._compose()

    def _compose(self) -> None:
        """Build the components that own the rest of the state and hook them to the manager."""
        config, journal, clock, notifier = self.config, self.j, self.clock, self.notifier
        self.time = MarketTime(clock)
        self.desk = ControlDesk(
            config.home, journal, self.risk, self.manager, self.ledger, clock, notifier.notify
        )
        self.watch = BrokerWatch(self.risk, self.broker)
        self.recon = ReconcileStep(self.reconciler, journal, self.risk, notifier.notify)
        self.pnl = PnlGuard(journal, self.risk, config.account_limits)
        self.submitter = Submitter(
            journal, self.risk, self.manager, self.deployments, self.ledger, clock,
            notifier.notify, config.account_limits, self.time.now,
        )  # fmt: skip
        self.manager.on_send = self.submitter.on_send
        self.manager.on_auth_rejected = self.watch.auth_rejected
        self.manager.may_resend = lambda row: (
            not self.recon.running
            and self.market is not None  # without the market's time no send window is known
            and (row.intent.tag == FLATTEN_TAG or self.risk.state() is not TradingState.HALTED)
        )
        self.manager.too_late = self.too_late
        self.minutes = MinuteDecisions(self.deployments, self.market_now, notifier.notify)
        self.submitter.also_late = self.minutes.too_late

    def _risk_changed(self, reasons: dict[str, dict[str, str]]) -> None:
        """Journal the reasons and when each was raised (meta ``risk_since``: scope -> key ->
        {state, at}), so a halt's time is on record."""
        self.j.set_meta("risk_reasons", reasons)
        old = self.j.get_meta("risk_since", {})
        at = self.clock.now().isoformat()
        since = {
            scope: {
                k: old[scope][k] if old.get(scope, {}).get(k, {}).get("state") == v
                else {"state": v, "at": at}
                for k, v in keys.items()
            }
            for scope, keys in reasons.items()
        }  # fmt: skip
        if since != old:
            self.j.set_meta("risk_since", since)

    @property
    def reconciling(self) -> bool:
        """Whether a reconciliation is under way, owned by :attr:`recon`."""
        return self.recon.running

    @property
    def market(self) -> MarketClock | None:
        """The broker's market clock at the last refresh, owned by :attr:`time`."""
        return self.time.market

    @property
    def peaks(self) -> dict[str, float]:
        """Equity peaks per scope (``""``: the account), owned by :attr:`pnl`."""
        return self.pnl.peaks

    @property
    def latencies(self) -> list[float]:
        """Decision-to-submit seconds, owned by :attr:`submitter`."""
        return self.submitter.latencies

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Rebuild positions from fills, load deployments and reconcile (HALTED on failure)."""
        self.desk.check_halt_file()
        self.ledger.rebuild(jo.all_fills(self.j))
        jo.save_positions(self.j, self.ledger.positions_map(), self.clock.now())
        self.deployments.refresh(jo.busy_deployments(self.j))
        try:
            self._refresh_market(self.watch.call("clock", self.clock.market))
        except BrokerError as exc:
            self.notifier.notify("broker_error", f"market clock: {exc}", "error")
        self.reconcile(full=True)
        self.publish_health(None)

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
            intraday = self.feed.mode != "lake"
            if intraday:
                chunk = min(chunk, self.config.intraday_poll_s)
            while pause > 0 and not should_stop():  # a stop request is seen within a chunk
                started = self.clock.monotonic()
                if not (intraday and getattr(self.feed, "wakes", False)):
                    self.clock.sleep(min(pause, chunk))
                else:  # a live stream: wake on a new bar instead of sleeping the chunk out
                    self.feed.wait(min(pause, chunk))
                pause -= max(self.clock.monotonic() - started, 0.0) if intraday else chunk
                self._between_cycles()
        self.notifier.flush(2.0)
        if self.updates is not None:
            self.updates.close()
        self.feed.close()

    def _between_cycles(self) -> None:
        """Book streamed order changes while waiting for the next cycle (fills within ~1 s);
        with a stream feed, take its bars (:meth:`intraday_tick`)."""
        if self.updates is not None:
            try:
                self.apply_updates()
            except Exception as exc:  # noqa: BLE001 - the next cycle's poll is the safety net
                log.warning("applying streamed order updates failed: %s", exc, exc_info=True)
        if self.feed.mode != "lake":
            try:
                self.intraday_tick()
            except Exception as exc:  # noqa: BLE001 - the next tick or cycle tries again
                log.warning("intraday step failed: %s", exc, exc_info=True)
                self.notifier.notify("cycle_error", f"intraday: {exc}", "error")

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
        started = time.perf_counter()
        self.desk.check_halt_file()  # first: the kill switch must not need the journal
        if self.lock is not None:  # a Postgres lock dies with its session: stop, send nothing
            self.lock.check()
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

        step("commands", self.desk.process_commands)
        step("stream", self.apply_updates)
        step("poll", self._poll)
        if self.cycles % self.config.reconcile_every == 0:
            step("reconcile", lambda: self.reconcile(full=False))
        step("deployments", lambda: self.deployments.refresh(jo.busy_deployments(self.j)))
        market = step("clock", lambda: self.watch.call("clock", self.clock.market))
        if market is not None:
            step("market_data", lambda: self._refresh_market(market))
        step("session_reconcile", lambda: self._reconcile_for_session(market))
        approved = step("decide", lambda: self._decide_and_prepare(market, counts)) or []
        counts["submitted"] = step("submit", lambda: self.submitter.send(approved)) or 0
        if self.feed.mode != "lake":
            minute_intents = step("intraday", self.intraday_tick) or 0
            counts["intents"] = counts.get("intents", 0) + minute_intents
        step("reprice", lambda: self.manager.reprice_stale(self.quotes, self.config.stale_limit_s))
        step("pnl", self._update_pnl)
        self.j.finish_cycle(
            seq, self.clock.now(), self.risk.state().value, counts, "; ".join(errors)
        )
        self.publish_health(counts, "; ".join(errors))
        self._observe(time.perf_counter() - started, counts, len(errors))
        return counts

    def _observe(self, seconds: float, counts: dict[str, int], errors: int) -> None:
        """Export the cycle to :attr:`metrics` (Prometheus)."""
        self.metrics.cycle_done(
            seconds, counts, errors, self.risk.state().value, self.risk.reasons()
        )
        latencies = self.submitter.latencies
        for value in latencies[self._latencies_seen :]:
            self.metrics.decision_latency.observe(value)
        self._latencies_seen = len(latencies)
        if self.feed.mode != "lake":
            newest = self.feed.stats().get("newest_minute")
            if newest:  # the newest closed minute's close vs the clock: the feed's lag
                closed = datetime.fromisoformat(newest).timestamp() + 60.0
                self.metrics.stream_lags(
                    {self.feed.mode: max(self.clock.now().timestamp() - closed, 0.0)}
                )

    def _refresh_market(self, market: MarketClock) -> None:
        self.time.set(market)
        try:
            snap = self.feed.latest(market.timestamp)
        except LakeDataError as exc:  # never decide on data with a hole in it
            self.desk.halt_for("lake_data", str(exc))
            return
        self.desk.clear_reason("lake_data")
        if snap is not None and snap is not self.snapshot:
            self.snapshot, self.daily_quotes = snap, snapshot_quotes(snap)
            self.quotes = self.feed.marks(self.daily_quotes, snap)

    def market_now(self) -> datetime:
        """The market's time now (:meth:`MarketTime.now`)."""
        return self.time.now()

    def too_late(self, row: jo.OrderRow) -> str | None:
        """Why an unacknowledged order may no longer be sent (:meth:`MarketTime.too_late`, and
        a minute decision's own window, :meth:`MinuteDecisions.too_late`)."""
        return self.time.too_late(row, self._session()) or self.minutes.too_late(row)

    def _session(self) -> str | None:
        return self.snapshot.session.isoformat() if self.snapshot is not None else None

    def close(self) -> None:
        """Close the market feed and the journal and give the data-root lock back."""
        self.feed.close()
        self.j.close()
        if self.lock is not None:
            self.lock.release()

    def quote(self, symbol: str) -> Quote | None:
        """The latest reference quote (the simulated broker fills against these)."""
        return self.quotes.get(symbol)

    def reconcile(self, full: bool) -> bool:
        """Reconcile (:meth:`ReconcileStep.run`); whether it succeeded."""
        report = self.recon.run(full)
        if report is not None:
            self.account = report.account
        return report is not None

    def _reconcile_for_session(self, market: MarketClock | None) -> None:
        """Reconcile before the first decision on a new session's data, when the market is
        open (:meth:`ReconcileStep.for_session`)."""
        if market is None or not market.is_open or self.snapshot is None:
            return
        report = self.recon.for_session(self.snapshot.session.isoformat())
        if report is not None:
            self.account = report.account

    def _poll(self) -> None:
        self.broker.step()
        self.watch.call("orders", self.manager.poll)
        self.account = self.watch.call("account", self.broker.account)

    def _update_pnl(self) -> None:
        self.pnl.update(
            self.ledger, self.deployments.active.values(), self.account, self.quotes,
            self.clock.now(),
        )  # fmt: skip

    def publish_health(self, counts: dict[str, int] | None, error: str = "") -> None:
        """Refresh what ``/health`` serves."""
        deps = self.deployments.active
        self.status.update(
            state=self.risk.state().value, reasons=self.risk.reasons(), broker=self.broker.name,
            paper=self.broker.paper, cycles=self.cycles, last_cycle=self.j.last_cycle(),
            last_counts=counts, last_error=error, deployments=len(deps),
            account_limits=self.config.account_limits.model_dump(mode="json"),
            limits={d.id: d.manifest.risk_limits.model_dump(mode="json")
                    for d in list(deps.values())[:200]},
            stream=vars(self.updates.stats) if self.updates is not None else None,
            market_data=self._market_data_status(),
        )  # fmt: skip

    def _market_data_status(self) -> dict[str, Any]:
        """The feed's health and the minute decisions' latency (also journal meta
        ``market_data``, which ``live status`` shows)."""
        out = {**self.feed.stats(), **self.minutes.stats()}
        if self.feed.mode != "lake" and self.j.get_meta("market_data", None) != out:
            self.j.set_meta("market_data", out)
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
            return self.prepare()

    def prepare(self) -> list[jo.OrderRow]:
        """Risk-check, journal and mark every pending order (:meth:`Submitter.prepare`)."""
        view = SendView(self._session(), self.quotes, self.account, self.peaks)
        return self.submitter.prepare(view)

    def _decide(self, market: MarketClock) -> int:
        if self.snapshot is None:
            return 0
        if self.feed.mode == "lake":
            self.minutes.warn_idle()
        stamped = decide_all(
            self.j, self.deployments, self.ledger, self.risk, self.quotes, self.pnl.peaks,
            jo.busy_deployments(self.j), self.clock, self.snapshot, market.timestamp,
            self.notifier.notify,
        )  # fmt: skip
        self.submitter.track(stamped)
        return len(stamped)

    # -- intraday (market_data="stream") -------------------------------------------------------
    def intraday_tick(self) -> int:
        """Take the feed's new bars; on new ones refresh orders, marks and the daily-loss and
        drawdown checks, then let the "1m" deployments decide on the newest closed minute (once
        each) and send. Returns the new intents."""
        now = self.clock.now()
        try:
            new = self.feed.pump(now)
        except LakeDataError as exc:  # never decide on data with a hole in it
            self.desk.halt_for("lake_data", str(exc))
            return 0
        if new:
            self.apply_updates()
            self._poll()
            self.quotes = self.feed.marks(self.daily_quotes, self.snapshot, self._marked())
            self._update_pnl()
        minute = self.feed.closed_minute(now)
        if not self.minutes.due(minute) or self.snapshot is None:
            return 0
        assert minute is not None
        self.minutes.last = minute
        deps = self.minutes.deployments()
        opens, closes = session_hours(minute.astimezone(NEW_YORK).date())
        if not deps or not opens <= minute < closes or now >= closes:  # closed: no decision
            return 0
        self.desk.check_halt_file()  # the kill switch and commands act before a decision
        self.desk.process_commands()
        if self.risk.state() is TradingState.HALTED:
            return 0
        with self.j.tx():
            stamped = self._decide_minute(minute, deps)
            approved = self.prepare()
        self.minutes.done(minute, self.feed.arrival(minute))
        self.submitter.send(approved)
        return len(stamped)

    def _marked(self) -> set[str]:
        """The symbols a new bar must re-mark: held positions and open orders' legs (other
        contracts keep the daily chain's mark until a decision or order needs them)."""
        held = {symbol for symbol, qty in self.ledger.totals().items() if qty}
        return held | {leg.symbol for o in jo.open_orders(self.j) for leg in o.intent.legs}

    def _decide_minute(self, minute: datetime, deps: list[Deployment]) -> list[tuple[str, float]]:
        """Decide the "1m" deployments ``deps`` on ``minute``'s close."""
        assert self.snapshot is not None
        symbols = sorted({s for d in deps for s in strategy_symbols(d)})
        snapshot = self.feed.minute_snapshot(self.snapshot, minute, symbols)
        stamped = decide_all(
            self.j, self.deployments, self.ledger, self.risk, self.quotes, self.pnl.peaks,
            jo.busy_deployments(self.j), self.clock, snapshot, minute + MINUTE,
            self.notifier.notify, "1m", minute_key(minute), self._session(),
        )  # fmt: skip
        self.submitter.track(stamped)
        return stamped
