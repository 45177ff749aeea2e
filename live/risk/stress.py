"""The stressed-loss pre-trade rule: refuse an order that deepens the book's worst scenario
loss beyond ``max_stressed_loss``.

The book after the order (held positions plus the order's legs) is revalued in full by
:func:`strategies.stress.stress_grid` on the standard grid (spot -10%..+10% in five steps x
implied vol -10, 0, +10 points). Each option's volatility is implied from its reference quote's
mid against its underlying's quote (rate and dividend yield 0: the same inputs price the base
and the scenarios, so the unshocked book is worth its marks); a mid at or below intrinsic gives
vol 0. Time to expiry counts calendar days from the check's New York date. An order that leaves
the worst loss no larger than before always passes (a hedge is never blocked); the deployment's
limit applies to its own book, the account's to the account's positions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from live.orders.reports import OrderTicket, Quote
from strategies import occ
from strategies.models import NEW_YORK, AssetClass
from strategies.pricing import implied_vol
from strategies.stress import StressBook, stress_grid

if TYPE_CHECKING:
    from live.risk.rules import RiskContext

DAYS_PER_YEAR = 365.0


def _after(held: Mapping[str, float], ticket: OrderTicket) -> dict[str, tuple[float, bool]]:
    """symbol -> (qty after the order, is option)."""
    out = {s: (q, bool(_is_option(s))) for s, q in held.items() if q}
    for leg in ticket.intent.legs:
        before = out.get(leg.symbol, (0.0, False))[0]
        qty = before + leg.sign * leg.ratio_qty * ticket.order_qty
        out[leg.symbol] = (qty, leg.asset_class is AssetClass.US_OPTION)
    return out


def _is_option(symbol: str) -> bool:
    try:
        occ.parse(symbol)
    except ValueError:
        return False
    return True


def worst_loss(
    positions: Mapping[str, tuple[float, bool]], quotes: Mapping[str, Quote], today: date
) -> tuple[float, str]:
    """The standard grid's worst loss ($, >= 0) of ``positions`` and where it happens.

    Raises:
        KeyError: naming a symbol (or its underlying) without a usable quote.
    """
    spots: dict[str, float] = {}
    legs: list[tuple[str, bool, float, float, float, float]] = []  # und, call, K, T, iv, units
    stock: dict[str, float] = {}
    for symbol, (qty, option) in positions.items():
        if not qty:
            continue
        if not option:
            spots[symbol] = _price(quotes, symbol)
            stock[symbol] = stock.get(symbol, 0.0) + qty
            continue
        sym = occ.parse(symbol)
        s = spots.setdefault(sym.root, _price(quotes, sym.root))
        t = max((sym.expiry - today).days, 0) / DAYS_PER_YEAR
        mid = _price(quotes, symbol)
        iv = implied_vol(mid, s, sym.strike, t, 0.0, 0.0, sym.is_call) if t > 0 else 0.0
        legs.append((sym.root, sym.is_call, sym.strike, t, iv if math.isfinite(iv) else 0.0,
                     qty * 100.0))  # fmt: skip
    if not spots:
        return 0.0, "empty book"

    def col(k: int, dtype: Any = np.float64) -> np.ndarray:
        return np.array([leg[k] for leg in legs], dtype=dtype)

    book = StressBook.from_arrays(
        spots, col(0, object), col(1, bool), col(2), col(3), col(4), col(5), stock=stock
    )
    pnl, at_spot, at_vol = stress_grid(book).worst
    return max(-pnl, 0.0), f"spot {at_spot:+.0%}, vol {at_vol:+g} pts"


def _price(quotes: Mapping[str, Quote], symbol: str) -> float:
    q = quotes.get(symbol)
    px = q.mid if q is not None else math.nan
    if not (math.isfinite(px) and px > 0):
        raise KeyError(symbol)
    return px


def stressed_loss(ticket: OrderTicket, ctx: RiskContext) -> str | None:
    """The order's book stays within ``max_stressed_loss`` on the standard grid (deployment and
    account), or the order does not deepen its worst loss."""
    today = ctx.now.astimezone(NEW_YORK).date()
    scopes = (
        ("deployment", ctx.limits.max_stressed_loss, {p.symbol: p.qty for p in ctx.book.positions}),
        ("account", ctx.account.max_stressed_loss, dict(ctx.account_positions)),
    )
    for scope, cap, held in scopes:
        if cap is None:
            continue
        try:
            before, _ = worst_loss({s: (q, _is_option(s)) for s, q in held.items()}, ctx.quotes,
                                   today)  # fmt: skip
            after, where = worst_loss(_after(held, ticket), ctx.quotes, today)
        except KeyError as exc:
            return f"cannot stress the {scope} book: no usable quote for {exc.args[0]}"
        if after > cap and after > before + 1e-6:
            return (
                f"{scope} stressed loss {after:,.0f} at {where} > max {cap:,.0f} "
                f"(was {before:,.0f} before the order)"
            )
    return None
