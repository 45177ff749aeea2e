"""Closing orders for the ``flatten`` command (emergency liquidation)."""

from __future__ import annotations

from datetime import datetime

from live.book import Ledger
from live.orders.ids import client_order_id
from strategies.models import AssetClass, Leg, OrderIntent, PositionIntent, Side

FLATTEN_TAG = "flatten"


def closing_intents(ledger: Ledger, now: datetime) -> dict[str, list[tuple[int, OrderIntent, str]]]:
    """Per deployment, one market order closing each position (``tag="flatten"``)."""
    out: dict[str, list[tuple[int, OrderIntent, str]]] = {}
    for (dep, symbol), (qty, _avg, ac) in sorted(ledger.positions_map().items()):
        side = Side.SELL if qty > 0 else Side.BUY
        if ac == AssetClass.US_OPTION.value:
            pi = PositionIntent.SELL_TO_CLOSE if qty > 0 else PositionIntent.BUY_TO_CLOSE
            leg = Leg(symbol, side, 1, AssetClass.US_OPTION, pi)
        else:
            leg = Leg(symbol, side, 1, AssetClass.US_EQUITY)
        tickets = out.setdefault(dep, [])
        seq = len(tickets)
        intent = OrderIntent(dep, (leg,), abs(qty), tag=FLATTEN_TAG, reason="flatten command")
        tickets.append((seq, intent, client_order_id(dep, now, seq, 1)))
    return out
