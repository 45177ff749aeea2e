"""Per-leg fills from a broker report (what is new since the last booking)."""

from __future__ import annotations

import math
from datetime import datetime

from live.journal import orders as jo
from live.journal.store import Journal
from live.orders.reports import OrderReport


def leg_fills(
    journal: Journal, row: jo.OrderRow, report: OrderReport, filled: float, now: datetime
) -> list[jo.FillRow]:
    """Fills still to book per leg so that each leg has ``filled * ratio`` booked in total.

    Prices come from each leg's average (or the order's for simple orders): the booked value
    so far is subtracted, so a fill delta gets exactly its own price. Execution ids are
    ``<client id>:<symbol>:<cumulative qty>``, so booking the same state twice is a no-op.
    """
    booked = {
        r[0]: (r[1], r[2])
        for r in journal.rows(
            "SELECT symbol, SUM(ABS(qty)), SUM(ABS(qty) * price) FROM fills "
            "WHERE client_order_id=? GROUP BY symbol",
            row.client_order_id,
        )
    }
    legs = {leg.symbol: leg for leg in report.legs}
    out = []
    for leg in row.intent.legs:
        target = filled * leg.ratio_qty
        done_qty, done_value = booked.get(leg.symbol, (0.0, 0.0))
        delta = target - done_qty
        if delta <= 1e-9:
            continue
        rep = legs.get(leg.symbol)
        avg = rep.filled_avg_price if rep is not None else None
        if avg is None or not math.isfinite(avg):
            avg = report.filled_avg_price if not report.is_mleg else None
        price = 0.0 if avg is None else max((avg * target - done_value) / delta, 0.0)
        out.append(
            jo.FillRow(
                f"{row.client_order_id}:{leg.symbol}:{target:g}",
                row.client_order_id,
                row.deployment_id,
                leg.symbol,
                leg.asset_class.value,
                leg.sign * delta,
                price,
                now,
            )
        )
    return out
