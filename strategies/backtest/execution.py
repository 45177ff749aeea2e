"""Turning an :class:`OrderIntent` into fills at the session's quotes (all legs or none)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from strategies.backtest.archive import ChainArchive
from strategies.backtest.config import OptionsBacktestConfig
from strategies.backtest.ledger import Holding, Ledger
from strategies.models import AssetClass, Leg, OrderIntent, OrderType, PositionIntent, Side


class OrderRejected(Exception):
    """The engine refused an intent; the message says why (recorded, never fatal)."""


@dataclass(frozen=True, slots=True)
class LegFill:
    """One priced leg: the holding it trades, signed quantity, price per share, fees, mark."""

    leg: Leg
    holding: Holding
    qty: float
    price: float
    fees: float
    mark: float


def _option_holding(archive: ChainArchive, row: int, symbol: str) -> Holding:
    c = archive.cols
    und = archive.underlyings[int(c["und"][row])]
    return Holding(
        symbol,
        0.0,
        0.0,
        float(c["mid"][row]),
        und,
        True,
        int(c["key"][row]),
        int(c["expiry"][row]),
        float(c["strike"][row]),
        bool(c["is_call"][row]),
        float(c["delta"][row]),
        float(c["gamma"][row]),
        float(c["vega"][row]),
        float(c["theta"][row]),
        float(c["iv"][row]),
        float(c["underlying_price"][row]),
    )


def price_leg(
    archive: ChainArchive,
    day: int,
    leg: Leg,
    qty: float,
    config: OptionsBacktestConfig,
    ledger: Ledger,
) -> LegFill:
    """Price one leg at ``mid +/- fill_fraction * spread`` (options) or the slipped spot (stock)."""
    sell = leg.side is Side.SELL
    if leg.asset_class is AssetClass.US_OPTION:
        row = archive.find_symbol(day, leg.symbol)
        if row < 0:
            raise OrderRejected(f"no quote for {leg.symbol} on {archive.sessions[day]}")
        bid, ask = archive.cols["bid"][row], archive.cols["ask"][row]
        mid = archive.cols["mid"][row]
        if not (math.isfinite(bid) and math.isfinite(ask) and math.isfinite(mid) and ask >= bid):
            raise OrderRejected(f"unusable quote for {leg.symbol}: bid {bid} ask {ask}")
        price = max(mid + (-1 if sell else 1) * config.fill_fraction * (ask - bid), 0.0)
        holding = ledger.holdings.get(leg.symbol) or _option_holding(archive, row, leg.symbol)
        fees = config.fees.option_fee(abs(qty), sell, abs(qty) * price * 100)
        return LegFill(leg, holding, qty, price, fees, float(mid))
    code = archive.underlyings.index(leg.symbol) if leg.symbol in archive.underlyings else -1
    spot = archive.und_price[day, code] if code >= 0 else math.nan
    if not math.isfinite(spot):
        raise OrderRejected(f"no price for {leg.symbol} on {archive.sessions[day]}")
    price = spot * (1 - config.stock_slippage if sell else 1 + config.stock_slippage)
    holding = ledger.holdings.get(leg.symbol) or Holding(leg.symbol, 0.0, 0.0, spot, leg.symbol)
    fees = config.fees.stock_fee(abs(qty), sell, abs(qty) * price)
    return LegFill(leg, holding, qty, price, fees, float(spot))


def _check_limit(intent: OrderIntent, fills: list[LegFill]) -> None:
    if intent.order_type is not OrderType.LIMIT:
        return
    limit = float(intent.limit_price)  # type: ignore[arg-type]
    if intent.is_mleg:
        net = sum(f.leg.sign * f.leg.ratio_qty * f.price for f in fills)
        if net > limit + 1e-9:
            raise OrderRejected(f"net {net:.4f} worse than limit {limit:.2f}")
        return
    fill = fills[0]
    worse = fill.price > limit + 1e-9 if fill.leg.side is Side.BUY else fill.price < limit - 1e-9
    if worse:
        raise OrderRejected(f"price {fill.price:.4f} worse than limit {limit:.2f}")


def _check_closing(leg: Leg, holding_qty: float, qty: float) -> None:
    intent = leg.position_intent
    closing = intent in (PositionIntent.BUY_TO_CLOSE, PositionIntent.SELL_TO_CLOSE)
    wrong = holding_qty == 0 or (holding_qty > 0) == (qty > 0) or abs(qty) > abs(holding_qty) + 1e-9
    if closing and wrong:
        raise OrderRejected(f"{intent} {abs(qty):g} {leg.symbol} but {holding_qty:g} held")


def execute(
    intent: OrderIntent,
    archive: ChainArchive,
    day: int,
    config: OptionsBacktestConfig,
    ledger: Ledger,
) -> list[LegFill]:
    """Fill every leg of ``intent`` or raise :class:`OrderRejected` leaving the ledger untouched.

    Checks: quotes exist, the limit is met, closing legs close what is held, and buying power
    (cash minus collateral) stays >= 0 unless the order reduces the shortfall.
    """
    fills = [
        price_leg(archive, day, leg, qty, config, ledger)
        for leg, qty in zip(intent.legs, intent.leg_quantities(), strict=True)
    ]
    for fill in fills:
        held = ledger.holdings.get(fill.leg.symbol)
        _check_closing(fill.leg, 0.0 if held is None else held.qty, fill.qty)
    _check_limit(intent, fills)
    cash_after = ledger.cash - sum(f.qty * f.price * f.holding.multiplier + f.fees for f in fills)
    extra = {f.leg.symbol: (f.holding, f.qty) for f in fills}
    bp_after = cash_after - ledger.requirement(extra)
    bp_before = ledger.cash - ledger.requirement()
    if bp_after < -1e-9 and bp_after < bp_before:
        need = "uncovered short call" if math.isinf(bp_after) else f"buying power {bp_after:,.2f}"
        raise OrderRejected(f"insufficient buying power: {need} after the order")
    for fill in fills:
        template = replace(fill.holding, mark=fill.mark)
        ledger.trade(template, fill.qty, fill.price, fill.fees)
    return fills
