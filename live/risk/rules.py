"""Pre-trade risk rules: pure functions returning None (pass) or the reason they refuse."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from contracts.limits import AccountLimits, GreekLimits, RiskLimits
from live.book import multiplier
from live.orders.reports import OrderTicket, Quote
from live.risk.account_rules import account_exposure
from live.risk.stress import stressed_loss
from strategies import occ
from strategies.accounting import Account, Holding
from strategies.models import AssetClass, Book, GreekExposure, OrderType

GREEKS = ("delta", "gamma", "vega", "theta")


@dataclass(frozen=True, slots=True)
class RiskContext:
    """What the rules see about one deployment and the account at check time."""

    deployment_id: str
    limits: RiskLimits
    account: AccountLimits
    book: Book
    account_positions: Mapping[str, float]
    account_greeks: GreekExposure
    account_equity: float
    open_orders: int
    account_open_orders: int
    quotes: Mapping[str, Quote]
    now: datetime
    # every deployment's own positions (deployment -> symbol -> qty), for the cluster cap
    deployment_positions: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def _legs(ticket: OrderTicket) -> list[tuple[str, float, str]]:
    """(symbol, signed quantity, asset class) traded by each leg."""
    qty = ticket.order_qty
    return [
        (leg.symbol, leg.sign * leg.ratio_qty * qty, leg.asset_class.value)
        for leg in ticket.intent.legs
    ]


def underlying(symbol: str, asset_class: str) -> str:
    """The underlying of an option symbol (the symbol itself for equity)."""
    return occ.parse(symbol).root if asset_class == AssetClass.US_OPTION.value else symbol


def is_reducing(ticket: OrderTicket, positions: Mapping[str, float]) -> bool:
    """True when every leg trades against, and not beyond, the position it holds."""
    for symbol, q, _ in _legs(ticket):
        held = positions.get(symbol, 0.0)
        if held == 0 or held * q > 0 or abs(q) > abs(held) + 1e-9:
            return False
    return True


def options_rules(ticket: OrderTicket, ctx: RiskContext) -> str | None:
    """Whole contracts, no notional, no extended hours, TIF allowed, mleg 2-4 unique legs."""
    intent, qty = ticket.intent, ticket.order_qty
    if intent.order_type not in (OrderType.MARKET, OrderType.LIMIT):
        return f"order type {intent.order_type} not allowed (market or limit only)"
    if intent.is_mleg:
        symbols = [leg.symbol for leg in intent.legs]
        if not 2 <= len(symbols) <= 4 or len(set(symbols)) != len(symbols):
            return f"mleg needs 2-4 legs with unique symbols, got {symbols}"
    if not (intent.has_options or intent.is_mleg):
        if ticket.notional is not None and ticket.qty is not None:
            return "qty and notional are mutually exclusive"
        return None
    if ticket.notional is not None:
        return "notional orders are not allowed for options"
    if not float(qty).is_integer() or qty <= 0:
        return f"options trade whole contracts, got qty {qty}"
    if ticket.extended_hours:
        return "extended hours are not allowed for options"
    if intent.time_in_force not in ctx.account.option_tifs:
        allowed = sorted(t.value for t in ctx.account.option_tifs)
        return f"time in force {intent.time_in_force} not allowed for options ({allowed})"
    return None


def price_sanity(ticket: OrderTicket, ctx: RiskContext) -> str | None:
    """Every leg has a fresh, positive, finite, uncrossed reference quote."""
    if ticket.price is not None and not math.isfinite(ticket.price):
        return f"limit price {ticket.price} is not finite"
    max_age = min(ctx.limits.max_quote_age_s, ctx.account.max_quote_age_s)
    for leg in ticket.intent.legs:
        q = ctx.quotes.get(leg.symbol)
        if q is None:
            return f"no reference quote for {leg.symbol}"
        px = q.reference(leg.side)
        if not math.isfinite(px) or px <= 0:
            return f"reference price of {leg.symbol} is {px} (NaN or <= 0)"
        if math.isfinite(q.bid) and math.isfinite(q.ask) and q.bid > q.ask > 0:
            return f"crossed quote for {leg.symbol}: bid {q.bid} > ask {q.ask}"
        age = (ctx.now - q.ts).total_seconds()
        if age > max_age:
            return f"stale quote for {leg.symbol}: {age:.0f}s old (max {max_age:.0f}s)"
    return None


def notional(ticket: OrderTicket, quotes: Mapping[str, Quote]) -> float:
    """Gross $ value of the order at reference prices (the limit for simple limit orders)."""
    if ticket.notional is not None:
        return ticket.notional
    if not ticket.is_mleg and ticket.price is not None:
        return abs(ticket.order_qty * ticket.price * multiplier(ticket.intent.legs[0].asset_class))
    total = 0.0
    for (symbol, q, ac), leg in zip(_legs(ticket), ticket.intent.legs, strict=True):
        total += abs(q) * quotes[symbol].reference(leg.side) * multiplier(ac)
    return total


def order_size(ticket: OrderTicket, ctx: RiskContext) -> str | None:
    """Per-order notional, contracts and shares within the deployment's and account's limits."""
    value = notional(ticket, ctx.quotes)
    contracts = sum(abs(q) for _, q, ac in _legs(ticket) if ac == AssetClass.US_OPTION.value)
    shares = sum(abs(q) for _, q, ac in _legs(ticket) if ac != AssetClass.US_OPTION.value)
    for scope, lim in (("deployment", ctx.limits), ("account", ctx.account)):
        if value > lim.max_order_notional:
            return f"order notional {value:,.0f} > {scope} max {lim.max_order_notional:,.0f}"
        if contracts > lim.max_order_contracts:
            return f"{contracts:g} contracts > {scope} max {lim.max_order_contracts}"
        if shares > lim.max_order_shares:
            return f"{shares:g} shares > {scope} max {lim.max_order_shares:g}"
    return None


def position_size(ticket: OrderTicket, ctx: RiskContext) -> str | None:
    """|position| per symbol after the order within limits (when it grows)."""
    for symbol, q, ac in _legs(ticket):
        held = ctx.book.shares(symbol)
        after = held + q
        if abs(after) <= abs(held):
            continue
        opt = ac == AssetClass.US_OPTION.value
        for scope, lim in (("deployment", ctx.limits), ("account", ctx.account)):
            cap = lim.max_position_contracts if opt else lim.max_position_shares
            total = after if scope == "deployment" else ctx.account_positions.get(symbol, 0.0) + q
            if abs(total) > cap:
                return f"{symbol} position {total:g} > {scope} max {cap:g}"
    return None


def concentration(ticket: OrderTicket, ctx: RiskContext) -> str | None:
    """Gross market value in one underlying / deployment equity after the order."""
    equity = ctx.book.equity
    gross: dict[str, float] = {}
    for p in ctx.book.positions:
        key = underlying(p.symbol, p.asset_class.value)
        gross[key] = gross.get(key, 0.0) + abs(p.market_value)
    before = dict(gross)
    for (symbol, q, ac), leg in zip(_legs(ticket), ticket.intent.legs, strict=True):
        key = underlying(symbol, ac)
        held = ctx.book.shares(symbol)
        px = ctx.quotes[symbol].reference(leg.side) * multiplier(ac)
        gross[key] = gross.get(key, 0.0) + (abs(held + q) - abs(held)) * px
    for key, value in gross.items():
        if value > before.get(key, 0.0) + 1e-6 and (
            equity <= 0 or value / equity > ctx.limits.max_concentration
        ):
            return (
                f"{key} would be {value:,.0f} of equity {equity:,.0f} "
                f"(max {ctx.limits.max_concentration:.0%})"
            )
    return None


def open_orders(ticket: OrderTicket, ctx: RiskContext) -> str | None:
    """Open orders below the deployment's and the account's caps."""
    if ctx.open_orders >= ctx.limits.max_open_orders:
        return f"{ctx.open_orders} open orders >= deployment max {ctx.limits.max_open_orders}"
    if ctx.account_open_orders >= ctx.account.max_open_orders:
        return f"{ctx.account_open_orders} open orders >= account max {ctx.account.max_open_orders}"
    return None


def greek_delta(ticket: OrderTicket, quotes: Mapping[str, Quote]) -> GreekExposure:
    """Change of portfolio Greeks (position units) the order would add."""
    out = [0.0, 0.0, 0.0, 0.0]
    for symbol, q, ac in _legs(ticket):
        if ac != AssetClass.US_OPTION.value:
            out[0] += q
            continue
        for k, g in enumerate(quotes[symbol].greeks):
            out[k] += q * multiplier(ac) * (g if math.isfinite(g) else 0.0)
    return GreekExposure(*out)


def _greeks_ok(now: GreekExposure, add: GreekExposure, caps: GreekLimits, scope: str) -> str | None:
    for name in GREEKS:
        cap = getattr(caps, name)
        before = getattr(now, name)
        after = before + getattr(add, name)
        if cap is not None and abs(after) > cap and abs(after) > abs(before):
            return f"{scope} {name} {after:,.1f} beyond +/-{cap:,.1f}"
    return None


def greeks(ticket: OrderTicket, ctx: RiskContext) -> str | None:
    """Portfolio Greeks within caps per deployment and per account (reductions always pass)."""
    add = greek_delta(ticket, ctx.quotes)
    return _greeks_ok(ctx.book.greeks, add, ctx.limits.greeks, "deployment") or _greeks_ok(
        ctx.account_greeks, add, ctx.account.greeks, "account"
    )


def buying_power(ticket: OrderTicket, ctx: RiskContext) -> str | None:
    """The accounting's rule (:meth:`strategies.accounting.Account.check`, as the backtest and
    the simulated broker apply it) on the deployment's book, at the touch: cash minus collateral
    after the order (spreads and condors by maximum loss, naked calls refused) stays >= 0.
    Orders that reduce always pass."""
    if is_reducing(ticket, {p.symbol: p.qty for p in ctx.book.positions}):
        return None
    account = Account.from_book(ctx.book)
    trades = [
        (
            account.holdings.get(s) or Holding.of(s, ac),
            q,
            ctx.quotes[s].reference(leg.side),
            0.0,
        )
        for (s, q, ac), leg in zip(_legs(ticket), ticket.intent.legs, strict=True)
    ]
    return account.check(trades)


Rule = Callable[[OrderTicket, RiskContext], str | None]
RULES: tuple[tuple[str, Rule], ...] = (
    ("options_rules", options_rules), ("price_sanity", price_sanity), ("order_size", order_size),
    ("position_size", position_size), ("concentration", concentration),
    ("open_orders", open_orders), ("greeks", greeks), ("buying_power", buying_power),
    ("max_stressed_loss", stressed_loss), ("account_exposure", account_exposure),
)  # fmt: skip
