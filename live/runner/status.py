"""A read-only summary of a journal (the ``status`` command and the end of ``run``)."""

from __future__ import annotations

import json
from typing import Any

from live.journal import orders as jo
from live.journal.store import Journal
from live.risk.engine import TradingState


def enforced_limits(j: Journal) -> dict[str, Any]:
    """Deployment id -> the risk limits of the manifest the runner loaded (what it enforces)."""
    rows = j.rows("SELECT id, manifest_json FROM deployments WHERE active = 1 ORDER BY id")
    return {r[0]: json.loads(r[1]).get("risk_limits") for r in rows[:200]}


def journal_status(j: Journal) -> dict[str, Any]:
    """State, reasons (and when each was raised), last cycle, open orders, positions,
    deployments with the limits enforced on them, command history and, with a stream feed, the
    minute decisions' latency."""
    reasons = j.get_meta("risk_reasons", {})
    states = [TradingState(v) for r in reasons.values() for v in r.values()]
    order = [TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED]
    state = max(states, key=order.index, default=TradingState.ACTIVE)
    counts = {r[0]: r[1] for r in j.rows("SELECT status, COUNT(*) FROM orders GROUP BY status")}
    return {
        "state": state.value, "reasons": reasons, "last_cycle": j.last_cycle(),
        "reason_details": j.get_meta("risk_details", {}),  # a reason's cause, e.g. the file
        "orders_by_status": counts,
        "open_orders": [o.client_order_id for o in jo.open_orders(j)][:50],
        "positions": [dict(r) for r in j.rows("SELECT deployment_id, symbol, qty, avg_price "
                                               "FROM positions ORDER BY 1, 2")][:200],
        "deployments": [dict(r) for r in j.rows("SELECT id, strategy, manifest_id, active "
                                                 "FROM deployments ORDER BY id")][:200],
        "limits": enforced_limits(j),
        "commands": [dict(r) for r in j.rows("SELECT * FROM commands ORDER BY id DESC LIMIT 5")],
        "fills": j.rows("SELECT COUNT(*) FROM fills")[0][0],
        "risk_since": j.get_meta("risk_since", {}),  # when each reason was raised
        "market_data": j.get_meta("market_data", None),  # stream: feed, minute latency p50/p99
    }  # fmt: skip
