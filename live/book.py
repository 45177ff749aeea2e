"""Positions and cash per deployment, folded from journaled fills (the journal is the truth)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from live.journal_orders import FillRow
from live.reports import Quote
from strategies import occ
from strategies.models import OPTION_MULTIPLIER, AssetClass, Book, Position, Right

EPS = 1e-9


@dataclass(slots=True)
class Holding:
    """A signed position with its average entry price."""

    qty: float
    avg_price: float
    asset_class: str


def multiplier(asset_class: str) -> int:
    """Shares per unit of quantity."""
    return OPTION_MULTIPLIER if asset_class == AssetClass.US_OPTION.value else 1


class Ledger:
    """Positions and cash flow of every deployment, from fills."""

    def __init__(self) -> None:
        self.holdings: dict[str, dict[str, Holding]] = {}
        self.cash_flow: dict[str, float] = {}

    @classmethod
    def from_fills(cls, fills: Iterable[FillRow]) -> Ledger:
        """The ledger after applying ``fills`` in order."""
        ledger = cls()
        for fill in fills:
            ledger.apply(fill)
        return ledger

    def apply(self, fill: FillRow) -> None:
        """Book one fill (signed qty: + buys, - sells)."""
        mult = multiplier(fill.asset_class)
        self.cash_flow[fill.deployment_id] = (
            self.cash_flow.get(fill.deployment_id, 0.0) - fill.qty * fill.price * mult
        )
        book = self.holdings.setdefault(fill.deployment_id, {})
        h = book.get(fill.symbol)
        if h is None or abs(h.qty) < EPS:
            book[fill.symbol] = Holding(fill.qty, fill.price, fill.asset_class)
        elif h.qty * fill.qty > 0:  # adding to the position
            total = h.qty + fill.qty
            h.avg_price = (h.avg_price * h.qty + fill.price * fill.qty) / total
            h.qty = total
        else:  # reducing, closing or flipping
            total = h.qty + fill.qty
            if abs(total) < EPS:
                del book[fill.symbol]
            elif total * h.qty < 0:
                book[fill.symbol] = Holding(total, fill.price, fill.asset_class)
            else:
                h.qty = total

    def qty(self, dep_id: str, symbol: str) -> float:
        """Signed quantity of ``symbol`` held by ``dep_id``."""
        h = self.holdings.get(dep_id, {}).get(symbol)
        return 0.0 if h is None else h.qty

    def positions_map(self) -> dict[tuple[str, str], tuple[float, float, str]]:
        """``(deployment, symbol) -> (qty, avg_price, asset_class)`` for non-zero positions."""
        return {
            (d, s): (h.qty, h.avg_price, h.asset_class)
            for d, book in self.holdings.items()
            for s, h in book.items()
            if abs(h.qty) > EPS
        }

    def totals(self) -> dict[str, float]:
        """Account-wide signed quantity per symbol."""
        out: dict[str, float] = {}
        for book in self.holdings.values():
            for s, h in book.items():
                out[s] = out.get(s, 0.0) + h.qty
        return {s: q for s, q in out.items() if abs(q) > EPS}

    def holders(self, symbol: str) -> list[tuple[str, float]]:
        """Deployments holding ``symbol`` with their signed quantities."""
        return [(d, b[symbol].qty) for d, b in self.holdings.items() if symbol in b]

    def book(
        self, dep_id: str, capital: float, quotes: Mapping[str, Quote], peak_equity: float = 0.0
    ) -> Book:
        """The strategy-facing :class:`Book` of one deployment, marked at ``quotes``."""
        cash = capital + self.cash_flow.get(dep_id, 0.0)
        positions = tuple(
            position(s, h, quotes.get(s)) for s, h in sorted(self.holdings.get(dep_id, {}).items())
        )
        collateral = sum(short_put_collateral(p) for p in positions)
        return Book.build(cash, positions, collateral, peak_equity)


def position(symbol: str, h: Holding, quote: Quote | None) -> Position:
    """A strategies :class:`Position` for a holding, marked at ``quote`` (else at cost)."""
    mark = quote.mid if quote is not None and math.isfinite(quote.mid) else h.avg_price
    if h.asset_class != AssetClass.US_OPTION.value:
        return Position(symbol, h.qty, h.avg_price, mark, AssetClass.US_EQUITY, symbol)
    sym = occ.parse(symbol)
    delta, gamma, vega, theta = quote.greeks if quote is not None else (0.0, 0.0, 0.0, 0.0)
    return Position(
        symbol,
        h.qty,
        h.avg_price,
        mark,
        AssetClass.US_OPTION,
        sym.root,
        sym.expiry,
        sym.strike,
        Right(sym.right),
        delta,
        gamma,
        vega,
        theta,
    )


def short_put_collateral(p: Position) -> float:
    """Cash a short put reserves (strike x 100 per contract)."""
    if p.right is Right.PUT and p.qty < 0 and p.strike is not None:
        return -p.qty * p.strike * OPTION_MULTIPLIER
    return 0.0
