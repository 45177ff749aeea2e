"""Fill and expiry mechanics of the simulated broker."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime

from live.brokers.sim_state import SimConfig, SimOrder, SimState, stamp
from live.reports import OrderStatus, Quote
from strategies import occ
from strategies.models import AssetClass, Side

MULT = {AssetClass.US_OPTION.value: 100, AssetClass.US_EQUITY.value: 1}


def _leg_price(quote: Quote | None, side: str, asset_class: str, config: SimConfig) -> float | None:
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


def book_position(state: SimState, symbol: str, qty: float, price: float, asset_class: str) -> None:
    """Apply a signed trade to the simulated positions and cash."""
    state.cash -= qty * price * MULT[asset_class]
    held, avg, _ = state.positions.get(symbol, [0.0, 0.0, asset_class])
    total = held + qty
    if abs(total) < 1e-9:
        state.positions.pop(symbol, None)
        return
    if held == 0 or held * total < 0:
        avg = price
    elif held * qty > 0:
        avg = (avg * held + price * qty) / total
    state.positions[symbol] = [total, avg, asset_class]


def try_fill(
    state: SimState,
    order: SimOrder,
    quotes: Callable[[str], Quote | None],
    config: SimConfig,
    now: datetime,
) -> None:
    """Fill (part of) ``order`` against current quotes when marketable."""
    prices = [
        _leg_price(quotes(leg.symbol), leg.side, leg.asset_class, config) for leg in order.legs
    ]
    if any(p is None for p in prices) or not _marketable(order, prices):  # type: ignore[arg-type]
        return
    qty = _fill_qty(order, config.fill_fraction)
    net = 0.0
    for leg, px in zip(order.legs, prices, strict=True):
        assert px is not None
        leg_qty = qty * leg.ratio
        signed = leg_qty if leg.side == "buy" else -leg_qty
        book_position(state, leg.symbol, signed, px, leg.asset_class)
        if leg.asset_class == AssetClass.US_OPTION.value:
            state.cash -= config.fee_per_contract * leg_qty
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
    """Exercise/assign ITM (>= $0.01) and expire OTM options expiring on or before ``cutoff``."""
    for symbol, (qty, _avg, ac) in list(state.positions.items()):
        if ac != AssetClass.US_OPTION.value:
            continue
        sym = occ.parse(symbol)
        if sym.expiry > cutoff:
            continue
        q = quotes(sym.root)
        spot = q.last if q is not None else float("nan")
        itm = (
            math.isfinite(spot)
            and ((spot - sym.strike) if sym.right == "C" else (sym.strike - spot)) >= 0.01
        )
        state.positions.pop(symbol)
        if itm:
            kind = "OPEXC" if qty > 0 else "OPASN"
            shares = qty * 100 * (1 if sym.right == "C" else -1)
            book_position(state, sym.root, shares, sym.strike, AssetClass.US_EQUITY.value)
        else:
            kind = "OPEXP"
        state.seq += 1
        state.activities.append(
            {
                "id": f"act-{state.seq:08d}",
                "type": kind,
                "symbol": symbol,
                "qty": qty,
                "day": sym.expiry.isoformat(),
            }
        )
