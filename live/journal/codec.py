"""JSON round-trips of strategy intents and tz-aware timestamps for the journal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from strategies.models import (
    AssetClass,
    Leg,
    OrderIntent,
    OrderType,
    PositionIntent,
    Side,
    TimeInForce,
)


def ts_to_text(ts: datetime) -> str:
    """UTC ISO-8601 text of a tz-aware datetime (ValueError on naive input)."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime; the journal stores tz-aware UTC only")
    return ts.astimezone(UTC).isoformat()


def ts_from_text(text: str) -> datetime:
    """The tz-aware datetime of :func:`ts_to_text` output."""
    ts = datetime.fromisoformat(text)
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def intent_to_dict(intent: OrderIntent) -> dict[str, Any]:
    """A JSON-able dict of ``intent``."""
    return {
        "strategy": intent.strategy, "qty": intent.qty, "order_type": intent.order_type.value,
        "limit_price": intent.limit_price, "time_in_force": intent.time_in_force.value,
        "tag": intent.tag, "reason": intent.reason,
        "legs": [{"symbol": leg.symbol, "side": leg.side.value, "ratio_qty": leg.ratio_qty,
                  "asset_class": leg.asset_class.value,
                  "position_intent": leg.position_intent.value if leg.position_intent else None}
                 for leg in intent.legs],
    }  # fmt: skip


def intent_from_dict(data: dict[str, Any]) -> OrderIntent:
    """The :class:`OrderIntent` of :func:`intent_to_dict` output."""
    legs = tuple(
        Leg(leg["symbol"], Side(leg["side"]), int(leg["ratio_qty"]), AssetClass(leg["asset_class"]),
            PositionIntent(leg["position_intent"]) if leg.get("position_intent") else None)
        for leg in data["legs"]
    )  # fmt: skip
    return OrderIntent(
        data["strategy"], legs, data["qty"], OrderType(data["order_type"]), data["limit_price"],
        TimeInForce(data["time_in_force"]), data.get("tag", ""), data.get("reason", ""),
    )  # fmt: skip


def intent_to_json(intent: OrderIntent) -> str:
    """Compact, key-sorted JSON of ``intent``."""
    return json.dumps(intent_to_dict(intent), sort_keys=True, separators=(",", ":"))


def intent_from_json(text: str) -> OrderIntent:
    """The intent of :func:`intent_to_json` output."""
    return intent_from_dict(json.loads(text))
