"""Building option order intents: opening structures and closing held positions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import reduce

from strategies.models import (
    AssetClass,
    Leg,
    OrderIntent,
    OrderType,
    Position,
    PositionIntent,
    Side,
)
from strategies.options.chain import ContractQuote, OptionChainView

OPEN_INTENT = {Side.BUY: PositionIntent.BUY_TO_OPEN, Side.SELL: PositionIntent.SELL_TO_OPEN}
CLOSE_INTENT = {Side.BUY: PositionIntent.BUY_TO_CLOSE, Side.SELL: PositionIntent.SELL_TO_CLOSE}


def check_price_fraction(value: float | None) -> None:
    """ValueError unless ``value`` is None (market orders) or within [0, 0.5]."""
    if value is not None and not 0.0 <= value <= 0.5:
        raise ValueError(f"limit_fraction must be None or in [0, 0.5], got {value}")


def leg_price(quote: ContractQuote, side: Side, fraction: float) -> float:
    """Per-share price ``mid +/- fraction * spread`` (buy +, sell -)."""
    sign = 1.0 if side is Side.BUY else -1.0
    return quote.mid + sign * fraction * quote.spread


def _cents(value: float, up: bool) -> float:
    scaled = value * 100.0
    return (math.ceil(scaled - 1e-7) if up else math.floor(scaled + 1e-7)) / 100.0


def build_intent(
    strategy: str,
    legs: Sequence[tuple[ContractQuote, Side, int, PositionIntent]],
    qty: int,
    fraction: float | None,
    tag: str,
    reason: str,
) -> OrderIntent:
    """An order for ``legs`` (quote, side, ratio, intent); a limit at ``mid +/- fraction*spread``
    rounded to the marketable cent (net debit/credit for mleg), or market when ``fraction`` is None.
    """
    order_legs = tuple(
        Leg(q.contract, side, ratio, AssetClass.US_OPTION, intent)
        for q, side, ratio, intent in legs
    )
    if fraction is None:
        return OrderIntent(strategy, order_legs, qty, tag=tag, reason=reason)
    if len(legs) == 1:
        quote, side, _, _ = legs[0]
        price = max(_cents(leg_price(quote, side, fraction), up=side is Side.BUY), 0.01)
    else:
        net = sum(
            (1 if side is Side.BUY else -1) * ratio * leg_price(q, side, fraction)
            for q, side, ratio, _ in legs
        )
        price = _cents(net, up=True)  # a higher debit / smaller credit is the marketable side
        if price == 0.0:
            price = 0.01
    return OrderIntent(strategy, order_legs, qty, OrderType.LIMIT, price, tag=tag, reason=reason)


def open_intent(
    strategy: str,
    legs: Sequence[tuple[ContractQuote, Side, int]],
    qty: int,
    fraction: float | None,
    tag: str,
    reason: str,
) -> OrderIntent:
    """Open a structure: each leg gets its ``*_to_open`` position intent."""
    return build_intent(
        strategy, [(q, s, r, OPEN_INTENT[s]) for q, s, r in legs], qty, fraction, tag, reason
    )


def close_intent(
    strategy: str,
    positions: Sequence[Position],
    chain: OptionChainView,
    fraction: float | None,
    tag: str,
    reason: str,
) -> OrderIntent | None:
    """Close option ``positions`` in one order (mleg for several), or None if any lacks a quote."""
    if not positions:
        return None
    sizes = [int(round(abs(p.qty))) for p in positions]
    unit = reduce(math.gcd, sizes)
    legs = []
    for pos, size in zip(positions, sizes, strict=True):
        quote = chain.quote(pos.symbol)
        if quote is None or not math.isfinite(quote.mid):
            return None
        side = Side.BUY if pos.qty < 0 else Side.SELL
        legs.append((quote, side, size // unit, CLOSE_INTENT[side]))
    return build_intent(strategy, legs, unit, fraction, tag, reason)
