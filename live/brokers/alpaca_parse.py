"""The one place alpaca-py models are touched: tickets to requests, models to our reports."""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar

from alpaca.trading.enums import OrderClass, OrderSide
from alpaca.trading.enums import PositionIntent as AlpacaIntent
from alpaca.trading.enums import TimeInForce as AlpacaTif
from alpaca.trading.models import Clock, Order, Position, TradeAccount
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    OptionLegRequest,
    OrderRequest,
)

from live.clock import MarketClock
from live.errors import MalformedResponse
from live.orders.reports import (
    AccountReport,
    ActivityReport,
    LegReport,
    OrderReport,
    OrderStatus,
    OrderTicket,
    PositionReport,
)
from strategies.models import AssetClass, OrderType, Side

T = TypeVar("T")


def order_request(ticket: OrderTicket) -> OrderRequest:
    """The alpaca-py request for ``ticket`` (simple or ``mleg``)."""
    intent = ticket.intent
    common: dict[str, Any] = {
        "time_in_force": AlpacaTif(intent.time_in_force.value),
        "client_order_id": ticket.client_order_id,
    }
    if ticket.extended_hours:
        common["extended_hours"] = True
    if ticket.notional is not None:
        common["notional"] = ticket.notional
    else:
        common["qty"] = ticket.order_qty
    if intent.is_mleg:
        common["order_class"] = OrderClass.MLEG
        common["legs"] = [
            OptionLegRequest(symbol=leg.symbol, ratio_qty=leg.ratio_qty,
                             side=OrderSide(leg.side.value),
                             position_intent=_intent(leg.position_intent))
            for leg in intent.legs]  # fmt: skip
    else:
        leg = intent.legs[0]
        common.update(symbol=leg.symbol, side=OrderSide(leg.side.value))
        if leg.position_intent is not None:
            common["position_intent"] = _intent(leg.position_intent)
    if intent.order_type is OrderType.LIMIT:
        return LimitOrderRequest(limit_price=ticket.price, **common)
    return MarketOrderRequest(**common)


def _intent(value: Any) -> AlpacaIntent | None:
    return None if value is None else AlpacaIntent(value.value)


def _f(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _expect(value: Any, kind: type[T]) -> T:
    if not isinstance(value, kind):
        raise MalformedResponse(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def order_report(raw: Any) -> OrderReport:
    """Our report of an alpaca-py :class:`Order` (nested legs for ``mleg``)."""
    order = _expect(raw, Order)
    if order.order_class == OrderClass.MLEG:
        if not order.legs:
            raise MalformedResponse(f"mleg order {order.client_order_id} came without its legs")
        legs = tuple(_leg(leg, float(leg.ratio_qty or 1)) for leg in order.legs)
    else:
        legs = (_leg(order, 1.0),)
    order_type = order.order_type or order.type
    return OrderReport(
        client_order_id=order.client_order_id, broker_id=str(order.id),
        status=OrderStatus(order.status.value), qty=float(order.qty or 0),
        filled_qty=float(order.filled_qty or 0), filled_avg_price=_f(order.filled_avg_price),
        legs=legs, submitted_at=order.submitted_at, updated_at=order.updated_at,
        order_type=OrderType.LIMIT if order_type and order_type.value == "limit"
        else OrderType.MARKET,
        limit_price=_f(order.limit_price),
        replaced_by=str(order.replaced_by) if order.replaced_by else None,
    )  # fmt: skip


def _leg(order: Order, ratio: float) -> LegReport:
    if order.symbol is None or order.side is None:
        raise MalformedResponse(f"order {order.client_order_id} lacks symbol/side")
    asset = (
        AssetClass.US_OPTION
        if order.asset_class and order.asset_class.value == "us_option"
        else AssetClass.US_EQUITY
    )
    return LegReport(
        order.symbol,
        Side(order.side.value),
        ratio,
        float(order.filled_qty or 0),
        _f(order.filled_avg_price),
        asset,
    )


def position_report(raw: Any) -> PositionReport:
    """Our report of a position (short quantities signed negative)."""
    p = _expect(raw, Position)
    qty = float(p.qty)
    if p.side is not None and p.side.value == "short" and qty > 0:
        qty = -qty
    asset = AssetClass.US_OPTION if p.asset_class.value == "us_option" else AssetClass.US_EQUITY
    return PositionReport(p.symbol, qty, float(p.avg_entry_price), asset, _f(p.current_price))


def account_report(raw: Any) -> AccountReport:
    """Our report of the account; a missing equity is malformed (never assumed 0)."""
    a = _expect(raw, TradeAccount)
    if a.equity is None or a.cash is None:
        raise MalformedResponse("account without equity/cash")
    equity = float(a.equity)
    return AccountReport(
        equity, _f(a.last_equity) or equity, float(a.cash), _f(a.buying_power) or 0.0,
        _f(a.options_buying_power) or _f(a.buying_power) or 0.0, bool(a.trading_blocked),
        a.status.value if a.status is not None else "",
    )  # fmt: skip


def market_clock(raw: Any) -> MarketClock:
    """Our market clock of ``/v2/clock``."""
    c = _expect(raw, Clock)
    return MarketClock(c.timestamp, bool(c.is_open), c.next_open, c.next_close)


def activity_report(raw: Any) -> ActivityReport:
    """An option activity from the raw JSON of ``/v2/account/activities``."""
    needed = {"id", "activity_type", "symbol", "qty", "date"}
    if not isinstance(raw, dict) or not needed <= set(raw):
        raise MalformedResponse(f"activity without id/type/symbol/qty/date: {str(raw)[:120]}")
    day = str(raw["date"])[:10]
    return ActivityReport(
        str(raw["id"]),
        str(raw["activity_type"]),
        str(raw["symbol"]),
        float(raw["qty"]),
        date.fromisoformat(day),
    )
