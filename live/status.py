"""A read-only summary of a journal (the ``status`` command and the end of ``run``)."""

from __future__ import annotations

from typing import Any

from live import journal_orders as jo
from live.journal import Journal
from live.risk import TradingState


def journal_status(j: Journal) -> dict[str, Any]:
    """State, reasons, last cycle, open orders, positions and command history."""
    reasons = j.get_meta("risk_reasons", {})
    states = [TradingState(v) for r in reasons.values() for v in r.values()]
    order = [TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED]
    state = max(states, key=order.index, default=TradingState.ACTIVE)
    counts = {r[0]: r[1] for r in j.rows("SELECT status, COUNT(*) FROM orders GROUP BY status")}
    return {
        "state": state.value, "reasons": reasons, "last_cycle": j.last_cycle(),
        "orders_by_status": counts,
        "open_orders": [o.client_order_id for o in jo.open_orders(j)][:50],
        "positions": [dict(r) for r in j.rows("SELECT deployment_id, symbol, qty, avg_price "
                                               "FROM positions ORDER BY 1, 2")][:200],
        "deployments": [dict(r) for r in j.rows("SELECT id, strategy, manifest_id, active "
                                                 "FROM deployments ORDER BY id")][:200],
        "commands": [dict(r) for r in j.rows("SELECT * FROM commands ORDER BY id DESC LIMIT 5")],
        "fills": j.rows("SELECT COUNT(*) FROM fills")[0][0],
    }  # fmt: skip
