"""What a fill's chart shows, computed from the journal's fills (the chart spec in the event).

The spec travels inside the event's facts, so the picture depends only on the stored event:
re-rendering after a crash, or for the 10,000th recipient, draws the same bytes.

- stock deployments: cumulative *realized* P&L after each fill (average-cost accounting, the
  last :data:`MAX_POINTS` points), the equity curve of what the deployment has closed;
- option deployments: the open position after the fill (net contracts and average premium per
  OCC symbol, stock legs too), with the spot taken from the approval's reference price when it
  is the options' underlying (else the middle of the strikes) and the fill's New York date.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from contracts import calendar
from live.journal.codec import ts_from_text
from strategies import occ

MAX_POINTS = 200
OPTION = "us_option"


def _fold(fills: Sequence[Any]) -> tuple[dict[str, tuple[float, float]], list[tuple[str, float]]]:
    """Positions ``symbol -> (qty, avg price)`` and the realized-P&L curve after each fill."""
    pos: dict[str, tuple[float, float]] = {}
    realized, points = 0.0, []
    for f in fills:
        mult = 100.0 if f["asset_class"] == OPTION else 1.0
        q, a = pos.get(f["symbol"], (0.0, 0.0))
        dq, p = float(f["qty"]), float(f["price"])
        if q == 0 or (q > 0) == (dq > 0):
            nq = q + dq
            a = (a * abs(q) + p * abs(dq)) / abs(nq) if nq else 0.0
        else:
            closed = min(abs(dq), abs(q))
            realized += closed * (p - a) * (1 if q > 0 else -1) * mult
            nq = q + dq
            if nq == 0:
                a = 0.0
            elif (nq > 0) != (q > 0):
                a = p  # flipped: the rest opens at this price
        pos[f["symbol"]] = (nq, a)
        points.append((ts_from_text(f["ts"]).isoformat(), round(realized, 6)))
    return {s: v for s, v in pos.items() if abs(v[0]) > 1e-12}, points


def fill_chart(fills: Sequence[Any], deployment: dict[str, Any] | None) -> dict[str, Any]:
    """The chart spec after the last of ``fills`` (one deployment's fills in booking order)."""
    positions, points = _fold(fills)
    has_options = any(f["asset_class"] == OPTION for f in fills)
    if not has_options:
        return {"kind": "equity", "points": [list(p) for p in points[-MAX_POINTS:]]}
    legs: list[list[Any]] = sorted([s, q, round(a, 6)] for s, (q, a) in positions.items())
    strikes = [o.strike for o in (_parse(str(leg[0])) for leg in legs) if o is not None]
    spot = _reference_spot(deployment, legs) or (
        (min(strikes) + max(strikes)) / 2 if strikes else float(fills[-1]["price"])
    )
    as_of = calendar.new_york_date(ts_from_text(fills[-1]["ts"])).isoformat()
    return {"kind": "payoff", "legs": legs, "spot": round(spot, 6), "as_of": as_of}


def _reference_spot(deployment: dict[str, Any] | None, legs: list[list[Any]]) -> float | None:
    if deployment is None:
        return None
    appr = json.loads(deployment["manifest_json"]).get("approval") or {}
    roots = {o.root for o in (_parse(str(leg[0])) for leg in legs) if o is not None}
    if appr.get("reference_symbol") in roots and appr.get("reference_price"):
        return float(appr["reference_price"])
    return None


def _parse(symbol: str) -> occ.OptionSymbol | None:
    try:
        return occ.parse(symbol)
    except ValueError:
        return None
