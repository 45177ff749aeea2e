"""Fill and expiry mechanics of the simulated broker."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime

from live.brokers.sim_state import SimConfig, SimOrder, SimState, stamp
from live.orders.reports import OrderStatus, Quote
from strategies.accounting import EXERCISE_THRESHOLD, Holding
from strategies.models import AssetClass, Side

ACTIVITY = {"exercise": "OPEXC", "assignment": "OPASN", "expiry": "OPEXP"}  # Alpaca's types


def leg_price(quote: Quote | None, side: str, asset_class: str, config: SimConfig) -> float | None:
    """Where one leg fills: options with a two-sided quote at ``mid +/- f * spread`` (the
    options backtest's model, ``f = option_fill_fraction``); everything else at its reference
    price (touch or last) moved ``slippage_bps`` against us."""
    if quote is None:
        return None
    f = config.option_fill_fraction
    two_sided = (  # a zero bid is a real quote for far out-of-the-money contracts
        math.isfinite(quote.bid) and math.isfinite(quote.ask) and 0 <= quote.bid <= quote.ask
        and quote.ask > 0
    )  # fmt: skip
    if asset_class == AssetClass.US_OPTION.value and f is not None and two_sided:
        spread = quote.ask - quote.bid
        mid = (quote.ask + quote.bid) / 2
        return round(max(mid + f * spread if side == "buy" else mid - f * spread, 0.0), 4)
    px = quote.reference(Side(side))
    if not math.isfinite(px) or px <= 0:
        return None
    slip = config.slippage_bps / 10_000.0
    return round(px * (1 + slip) if side == "buy" else px * (1 - slip), 4)


def _marketable(order: SimOrder, prices: list[float]) -> bool:
    if order.limit_price is None:
        return True
    if len(order.legs) == 1:
        return (
            prices[0] <= order.limit_price
            if order.legs[0].side == "buy"
            else prices[0] >= order.limit_price
        )
    net = sum(
        (1 if leg.side == "buy" else -1) * leg.ratio * px
        for leg, px in zip(order.legs, prices, strict=True)
    )
    return net <= order.limit_price + 1e-9  # + = max debit paid, - = min credit received


def _fill_qty(order: SimOrder, fraction: float) -> float:
    remaining = order.qty - order.filled_qty
    if fraction >= 1 or remaining <= 1:
        return remaining
    return float(min(remaining, max(1, math.ceil(remaining * fraction))))


def holding(state: SimState, symbol: str, asset_class: str) -> Holding:
    """The account's holding of ``symbol``, or a template for a new one."""
    return state.account.holdings.get(symbol) or Holding.of(symbol, asset_class)


def leg_fees(config: SimConfig, asset_class: str, qty: float) -> float:
    """Commission of one leg (``fee_per_contract`` per option contract)."""
    return config.fee_per_contract * qty if asset_class == AssetClass.US_OPTION else 0.0


def try_fill(
    state: SimState,
    order: SimOrder,
    quotes: Callable[[str], Quote | None],
    config: SimConfig,
    now: datetime,
) -> None:
    """Fill (part of) ``order`` against current quotes when marketable."""
    prices = [
        leg_price(quotes(leg.symbol), leg.side, leg.asset_class, config) for leg in order.legs
    ]
    if any(p is None for p in prices) or not _marketable(order, prices):  # type: ignore[arg-type]
        return
    qty = _fill_qty(order, config.fill_fraction)
    net = 0.0
    for leg, px in zip(order.legs, prices, strict=True):
        assert px is not None
        leg_qty = qty * leg.ratio
        signed = leg_qty if leg.side == "buy" else -leg_qty
        fees = leg_fees(config, leg.asset_class, leg_qty)
        state.account.trade(holding(state, leg.symbol, leg.asset_class), signed, px, fees)
        done = leg.filled_qty + leg_qty
        leg.avg_price = (
            px if not leg.avg_price else (leg.avg_price * leg.filled_qty + px * leg_qty) / done
        )
        leg.filled_qty = done
        net += (1 if leg.side == "buy" else -1) * leg.ratio * px
    if len(order.legs) == 1:
        net = prices[0]  # type: ignore[assignment]
    total = order.filled_qty + qty
    order.avg_price = (
        net if order.avg_price is None else (order.avg_price * order.filled_qty + net * qty) / total
    )
    order.filled_qty = total
    done = total >= order.qty - 1e-9
    order.status = (OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED).value
    order.updated_at = stamp(now)


def settle_expiries(state: SimState, cutoff: date, quotes: Callable[[str], Quote | None]) -> None:
    """Exercise/assign ITM (>= $0.01 at the underlying's last price) and expire OTM options
    expiring on or before ``cutoff``, recording Alpaca-style activities."""

    def spot(h: Holding) -> float:
        q = quotes(h.underlying)
        return q.last if q is not None else math.nan

    for event in state.account.expire(cutoff, spot, EXERCISE_THRESHOLD):
        state.seq += 1
        expiry = event.holding.expiry
        state.activities.append(
            {
                "id": f"act-{state.seq:08d}",
                "type": ACTIVITY[event.kind],
                "symbol": event.holding.symbol,
                "qty": event.holding.qty,
                "day": (expiry or cutoff).isoformat(),
            }
        )
