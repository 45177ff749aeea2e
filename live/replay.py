"""Replay past sessions through the live runner in sim: the same code path as live trading
(deployment manifests, lake snapshots, ``decide()``, risk engine, order manager, journal, the
simulated broker), on a simulated clock, in a replay home of its own.

For each session ``s`` in ``[start, end]`` the runner decides at the next open on the data up to
``s``'s close (as the live runner does), so the journal's orders of session ``s`` are the live
path's answer to the backtest's orders at bar ``s``. The source home is only read: its lake feeds
the snapshots and its deployment manifests are copied; the replay's journal and simulated broker
state live under ``<home>/live/replays/<start>_<end>/`` (recreated on every replay).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts import paths
from contracts.limits import AccountLimits
from live.brokers.sim_state import SimConfig
from live.clock import NEW_YORK, regular_hours
from live.errors import ConfigError
from live.journal.codec import intent_from_json
from live.journal.store import Journal
from live.market.snapshot import LakeSnapshotProvider, session_close
from live.notify import Sink
from live.runner.build import build_runner, lake_sessions
from live.runner.config import RunnerConfig

if TYPE_CHECKING:
    from live.runner.core import Runner

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Where a replay ran and what it decided.

    Attributes:
        home: The replay's own home (journal in ``live/journal.sqlite``).
        start: First replayed session.
        end: Last replayed session.
        cycles: Runner cycles run.
        orders: One row per decided order intent (see :func:`replay_orders`).
        books: Per decided session and deployment, the runner's book after that session's
            orders (see :func:`session_books`); ``deployment_id`` ``""`` is the broker's account.
    """

    home: Path
    start: date
    end: date
    cycles: int
    orders: list[dict[str, Any]]
    books: list[dict[str, Any]] = field(default_factory=list)


def replay_dir(home: Path, start: date, end: date) -> Path:
    """``<home>/live/replays/<start>_<end>``."""
    return paths.replays_dir(home) / f"{start.isoformat()}_{end.isoformat()}"


def replay(
    home: Path,
    start: date,
    end: date,
    *,
    deployments: list[str] | None = None,
    sim: SimConfig | None = None,
    account_limits: AccountLimits | None = None,
    lookback: int = 260,
    sinks: list[Sink] | None = None,
) -> ReplayResult:
    """Replay sessions ``start..end`` of the lake of ``home`` through the runner in sim.

    Args:
        home: The source home (its lake and ``live/deployments/*.json`` are read, never written).
        start: First session whose close the runner decides on.
        end: Last session whose close the runner decides on.
        deployments: Deployment file names (without ``.json``) to replay; default all.
        sim: Simulated broker knobs (default: :class:`SimConfig`).
        account_limits: Account limits (default: :class:`AccountLimits`).
        lookback: Sessions of history per snapshot (as ``live run``).
        sinks: Notification sinks (default: the log sink).

    Raises:
        ConfigError: Naming what is missing (sessions, deployments) and what to do.
    """
    home = Path(home).resolve()
    sessions = [s for s in lake_sessions(home) if start <= s <= end]
    if start > end or not sessions:
        raise ConfigError(
            f"no stock_bars_1d sessions between {start} and {end} in {paths.lake_dir(home)}; "
            "pick sessions the lake has (alpaca-improved backfill fills it)"
        )
    manifests = _manifests(home, deployments)
    out = replay_dir(home, sessions[0], sessions[-1])
    if out.exists():
        shutil.rmtree(out)
    target = paths.deployments_dir(out)
    target.mkdir(parents=True)
    for path in manifests:
        shutil.copy2(path, target / path.name)
    config = RunnerConfig(
        home=out,
        broker="sim",
        cycle_seconds=DAY,
        reconcile_every=5,
        sim=sim or SimConfig(),
        account_limits=account_limits or AccountLimits(),
        # half an hour after the first session's close: the first decision is at the next open
        sim_start=datetime.combine(sessions[0], time(16, 30), NEW_YORK),
        lookback=lookback,
    )
    runner, _ = build_runner(
        config, snapshots=LakeSnapshotProvider(home, lookback), sinks=sinks, local_journal=True
    )
    # the last decision happens at the first open after the last session's close
    stop_after = regular_hours(session_close(sessions[-1])).next_open + timedelta(minutes=1)
    books: dict[tuple[str, str], dict[str, Any]] = {}

    def stop() -> bool:  # asked before every cycle: keep the books after the last one
        books.update(((b["session"], b["deployment_id"]), b) for b in session_books(runner))
        return runner.clock.now() > stop_after

    try:
        runner.run(None, stop)
        orders = replay_orders(runner.j)
    finally:
        runner.close()  # the journal and the replay home's lock
    return ReplayResult(out, sessions[0], sessions[-1], runner.cycles, orders, list(books.values()))


def session_books(runner: Runner) -> list[dict[str, Any]]:
    """The runner's books on its latest snapshot's session, marked at its quotes: per
    deployment ``session, deployment_id, cash, collateral, buying_power, market_value, equity,
    realized_pnl, unrealized_pnl, fees, income, positions`` (``symbol -> (qty, avg_price)``),
    and the broker's account as deployment ``""`` (cash, options buying power, equity and
    positions as the broker reports them; collateral is cash minus that buying power)."""
    if runner.snapshot is None:
        return []
    session = runner.snapshot.session.isoformat()
    rows = []
    for dep in runner.deployments.active.values():
        st = runner.ledger.statement(dep.id, dep.manifest.capital, runner.quotes)
        held = runner.ledger.account(dep.id).holdings.values()
        rows.append(
            {"session": session, "deployment_id": dep.id, **asdict(st),
             "positions": {h.symbol: (h.qty, h.avg_price) for h in held}}
        )  # fmt: skip
    account = runner.broker.account()
    rows.append(
        {"session": session, "deployment_id": "", "cash": account.cash,
         "collateral": account.cash - account.options_buying_power,
         "buying_power": account.options_buying_power, "equity": account.equity,
         "positions": {p.symbol: (p.qty, p.avg_entry_price) for p in runner.broker.positions()}}
    )  # fmt: skip
    return rows


def _manifests(home: Path, names: list[str] | None) -> list[Path]:
    directory = paths.deployments_dir(home)
    found = {p.stem: p for p in sorted(directory.glob("*.json"))} if directory.is_dir() else {}
    if not found:
        raise ConfigError(
            f"no deployment manifests in {directory}; approve a candidate and let "
            "promote_to_live deploy it (or write one with "
            "live.deployments.manifests.write_manifest)"
        )
    if names is None:
        return list(found.values())
    missing = sorted(set(names) - set(found))
    if missing:
        raise ConfigError(f"no deployment {missing} in {directory}; have {sorted(found)}")
    return [found[n] for n in names]


def replay_orders(journal: Journal) -> list[dict[str, Any]]:
    """One row per decided order intent with its broker outcome summed over attempts.

    Keys: ``deployment_id, session, symbol, side, qty, filled_qty, avg_price, status,
    attempts, client_order_id`` (single-leg view: ``symbol``/``side`` of the first leg;
    ``legs`` has all of them).
    """
    rows = journal.rows(
        "SELECT i.id, i.deployment_id, i.session, i.intent_json, i.base_cid, "
        "count(o.client_order_id) AS attempts, coalesce(sum(o.filled_qty), 0) AS filled, "
        "sum(o.filled_qty * o.filled_avg_price) AS value, "
        "(SELECT status FROM orders x WHERE x.intent_id = i.id ORDER BY attempt DESC LIMIT 1) "
        "AS status FROM intents i LEFT JOIN orders o ON o.intent_id = i.id "
        "GROUP BY i.id ORDER BY i.session, i.deployment_id, i.seq"
    )
    out = []
    for r in rows:
        intent = intent_from_json(r["intent_json"])
        leg = intent.legs[0]
        filled = float(r["filled"])
        out.append(
            {
                "deployment_id": r["deployment_id"],
                "session": r["session"],
                "symbol": leg.symbol,
                "side": leg.side.value,
                "qty": float(intent.qty),
                "filled_qty": filled,
                "avg_price": (float(r["value"]) / filled) if filled else None,
                "status": r["status"] or "not_sent",
                "attempts": int(r["attempts"]),
                "client_order_id": r["base_cid"],
                "legs": [(lg.symbol, lg.side.value, lg.ratio_qty) for lg in intent.legs],
            }
        )
    return out
