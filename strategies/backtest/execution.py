"""Turning an :class:`OrderIntent` into fills at the session's quotes (all legs or none)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, timedelta

from strategies.accounting import Account
from strategies.backtest.archive import ChainArchive
from strategies.backtest.config import OptionsBacktestConfig
from strategies.backtest.holding import ChainHolding
from strategies.models import AssetClass, Leg, OrderIntent, OrderType, PositionIntent, Side

_EPOCH = date(1970, 1, 1)


class OrderRejected(Exception):
    """The engine refused an intent; the message says why (recorded, never fatal)."""


@dataclass(frozen=True, slots=True)
class LegFill:
    """One priced leg: the holding it trades, signed quantity, price per share, fees, mark."""

    leg: Leg
    holding: ChainHolding
    qty: float
    price: float
    fees: float
    mark: float


def _option_holding(archive: ChainArchive, row: int, symbol: str) -> ChainHolding:
    c = archive.cols
    return ChainHolding(
        symbol,
        mark=float(c["mid"][row]),
        underlying=archive.underlyings[int(c["und"][row])],
        is_option=True,
        expiry=_EPOCH + timedelta(days=int(c["expiry"][row])),
        strike=float(c["strike"][row]),
        is_call=bool(c["is_call"][row]),
        delta=float(c["delta"][row]),
        gamma=float(c["gamma"][row]),
        vega=float(c["vega"][row]),
        theta=float(c["theta"][row]),
        key=int(c["key"][row]),
        iv=float(c["iv"][row]),
        spot=float(c["underlying_price"][row]),
    )


def price_leg(
    archive: ChainArchive,
    day: int,
    leg: Leg,
    qty: float,
    config: OptionsBacktestConfig,
    account: Account,
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
        held = account.holdings.get(leg.symbol)
        holding = (
            held if isinstance(held, ChainHolding) else _option_holding(archive, row, leg.symbol)
        )
        fees = config.fees.option_fee(abs(qty), sell, abs(qty) * price * holding.multiplier)
        return LegFill(leg, holding, qty, price, fees, float(mid))
    code = archive.underlyings.index(leg.symbol) if leg.symbol in archive.underlyings else -1
    spot = archive.und_price[day, code] if code >= 0 else math.nan
    if not math.isfinite(spot):
        raise OrderRejected(f"no price for {leg.symbol} on {archive.sessions[day]}")
    price = spot * (1 - config.stock_slippage if sell else 1 + config.stock_slippage)
    held = account.holdings.get(leg.symbol)
    holding = (
        held
        if isinstance(held, ChainHolding)
        else ChainHolding(leg.symbol, mark=spot, underlying=leg.symbol)
    )
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
    account: Account,
) -> list[LegFill]:
    """Fill every leg of ``intent`` or raise :class:`OrderRejected` leaving the account untouched.

    Checks: quotes exist, the limit is met, closing legs close what is held, and the account's
    buying-power rule (:meth:`Account.check`: cash minus collateral stays >= 0 unless the order
    reduces the shortfall; naked calls are refused).
    """
    fills = [
        price_leg(archive, day, leg, qty, config, account)
        for leg, qty in zip(intent.legs, intent.leg_quantities(), strict=True)
    ]
    for fill in fills:
        held = account.holdings.get(fill.leg.symbol)
        _check_closing(fill.leg, 0.0 if held is None else held.qty, fill.qty)
    _check_limit(intent, fills)
    refused = account.check([(f.holding, f.qty, f.price, f.fees) for f in fills])
    if refused is not None:
        raise OrderRejected(refused)
    for fill in fills:
        account.trade(replace(fill.holding, mark=fill.mark), fill.qty, fill.price, fill.fees)
    return fills
