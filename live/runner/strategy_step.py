"""The decision step: the same ``decide()`` the backtest calls, for every idle deployment."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from live.book import Ledger
from live.clock import Clock
from live.deployments.active_set import DeploymentSet
from live.deployments.manifests import Deployment
from live.journal import orders as jo
from live.journal.store import Journal
from live.orders.ids import client_order_id
from live.orders.reports import Quote
from live.risk.engine import RiskEngine, TradingState
from strategies.base import StrategyError, safe_decide
from strategies.models import MarketSnapshot, OrderIntent, Timeframe

MAX_INTENTS = 999  # the client order id has three digits for the intent index
PARALLEL_FROM = 32  # decide in threads from this many deployments (polars/numba release the GIL)
_POOL = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="decide")


def decide_all(
    journal: Journal, deployments: DeploymentSet, ledger: Ledger, risk: RiskEngine,
    quotes: Mapping[str, Quote], peaks: Mapping[str, float], busy: set[str], clock: Clock,
    snapshot: MarketSnapshot, decision_ts: datetime, notify: Callable[..., None],
    timeframe: Timeframe = "1d", key: str | None = None, order_session: str | None = None,
) -> list[tuple[str, float]]:  # fmt: skip
    """Decide for every enabled, idle, not-halted deployment of ``timeframe`` that has not
    decided on ``key``; journal all decisions and their orders in one commit.

    Args:
        timeframe: Which deployments decide ("1d": daily, "1m": minute strategies).
        key: The decision's key, once per deployment (default: ``snapshot.session``; a minute
            decision's is its minute, :func:`live.runner.intraday.minute_key`). It salts the
            client order ids, so a restart re-derives the same ids and never decides twice.
        order_session: The data session journaled on the orders (their send window; default
            ``key``).

    Returns:
        ``(client order id, clock.monotonic() when its decide() returned)`` per new order.
    """
    session = key or snapshot.session.isoformat()
    decided = journal.decided_set(session)
    todo = [
        d
        for d in deployments.active.values()
        if d.manifest.enabled
        and d.strategy.timeframe == timeframe
        and d.id not in decided
        and d.id not in busy
        and risk.state(d.id) is not TradingState.HALTED
    ]

    def one(dep: Deployment) -> tuple[Deployment, list[OrderIntent], float]:
        book = ledger.book(dep.id, dep.manifest.capital, quotes, peaks.get(dep.id, 0.0))
        try:
            intents = safe_decide(dep.strategy, snapshot, book)  # pure: safe in threads
        except StrategyError as exc:
            notify("strategy_error", f"{dep.id}: {exc}", "error")
            intents = []
        if len(intents) > MAX_INTENTS:
            notify(
                "strategy_error", f"{dep.id}: {len(intents)} intents; kept {MAX_INTENTS}", "error"
            )
            intents = intents[:MAX_INTENTS]
        return dep, intents, clock.monotonic()

    results = list(_POOL.map(one, todo) if len(todo) >= PARALLEL_FROM else map(one, todo))
    stamps: list[tuple[str, float]] = []
    now = clock.now()
    with journal.tx():
        for dep, intents, decided_at in results:
            tickets = [
                (k, i, client_order_id(dep.id, decision_ts, k, len(i.legs), salt=session))
                for k, i in enumerate(intents)
            ]
            jo.record_decision(journal, dep.id, session, decision_ts, tickets, now, order_session)
            stamps += [(cid, decided_at) for _, _, cid in tickets]
    return stamps
