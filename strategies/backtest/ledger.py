"""The engine's mutable account: cash, holdings, marks and the collateral they require."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, timedelta

from strategies.models import OPTION_MULTIPLIER, AssetClass, Book, GreekExposure, Position, Right

_EPOCH = date(1970, 1, 1)


@dataclass(slots=True)
class Holding:
    """One held symbol (mutable inside the engine; published as a frozen :class:`Position`)."""

    symbol: str
    qty: float
    avg_price: float
    mark: float
    underlying: str
    is_option: bool = False
    key: int = -1
    expiry: int = 0  # days since 1970-01-01
    strike: float = 0.0
    is_call: bool = False
    delta: float = 1.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0
    iv: float = math.nan
    spot: float = math.nan  # underlying price at the last mark

    @property
    def multiplier(self) -> int:
        """Shares per unit of qty."""
        return OPTION_MULTIPLIER if self.is_option else 1

    @property
    def value(self) -> float:
        """Signed marked value."""
        return self.qty * self.mark * self.multiplier

    def position(self) -> Position:
        """Frozen snapshot for the :class:`Book`."""
        if not self.is_option:
            return Position(
                self.symbol, self.qty, self.avg_price, self.mark, underlying=self.underlying
            )
        return Position(
            self.symbol,
            self.qty,
            self.avg_price,
            self.mark,
            AssetClass.US_OPTION,
            self.underlying,
            _EPOCH + timedelta(days=self.expiry),
            self.strike,
            Right.CALL if self.is_call else Right.PUT,
            self.delta,
            self.gamma,
            self.vega,
            self.theta,
        )


def option_requirement(options: list[tuple[float, bool, float]], shares: float) -> float:
    """Cash a cash account must reserve for ``options`` (strike, is_call, signed contracts).

    Short calls are first covered by whole lots of ``shares`` (lowest strikes first); what is left
    needs the maximum loss of its expiry payoff over ``S in {0} U strikes`` (strike x 100 for a
    cash-secured put, the width for a spread). Uncovered short calls need infinite collateral.
    """
    lots = max(int(shares // OPTION_MULTIPLIER), 0) if shares > 0 else 0
    legs: list[tuple[float, bool, float]] = []
    for strike, is_call, qty in sorted(options):
        if is_call and qty < 0 and lots > 0:
            covered = min(lots, -qty)
            lots -= int(covered)
            qty += covered
        if qty != 0:
            legs.append((strike, is_call, qty))
    if sum(q for _, c, q in legs if c) < 0:
        return math.inf
    worst = 0.0
    for s in [0.0, *(k for k, _, _ in legs)]:
        payoff = sum(q * max(s - k, 0.0) if c else q * max(k - s, 0.0) for k, c, q in legs)
        worst = min(worst, payoff)
    return -worst * OPTION_MULTIPLIER


class Ledger:
    """Cash and holdings with average prices and cached collateral."""

    __slots__ = ("_collateral", "cash", "holdings", "peak_equity")

    def __init__(self, cash: float) -> None:
        self.cash = cash
        self.holdings: dict[str, Holding] = {}
        self.peak_equity = cash
        self._collateral: float | None = 0.0

    def trade(self, holding: Holding, qty: float, price: float, fees: float) -> None:
        """Add signed ``qty`` at ``price`` per share to ``holding`` (created when new), pay fees."""
        current = self.holdings.get(holding.symbol)
        if current is None:
            current = replace(holding, qty=0.0, avg_price=0.0)
            self.holdings[holding.symbol] = current
        new_qty = current.qty + qty
        if current.qty == 0 or (current.qty > 0) != (new_qty > 0) and new_qty != 0:
            current.avg_price = price  # opened or flipped: the remainder was bought at price
        elif abs(new_qty) > abs(current.qty):
            current.avg_price = (current.avg_price * current.qty + price * qty) / new_qty
        current.qty = new_qty
        self.cash -= qty * price * current.multiplier + fees
        if abs(new_qty) < 1e-9:
            del self.holdings[holding.symbol]
        self._collateral = None

    def remove(self, symbol: str) -> None:
        """Drop a holding (expired or settled)."""
        del self.holdings[symbol]
        self._collateral = None

    def requirement(self, extra: dict[str, tuple[Holding, float]] | None = None) -> float:
        """Collateral of the holdings, optionally after adding signed quantities in ``extra``."""
        if extra is None and self._collateral is not None:
            return self._collateral
        qty = {s: h.qty for s, h in self.holdings.items()}
        meta = dict(self.holdings)
        for symbol, (holding, delta) in (extra or {}).items():
            qty[symbol] = qty.get(symbol, 0.0) + delta
            meta.setdefault(symbol, holding)
        per_und: dict[str, list[tuple[float, bool, float]]] = {}
        shares: dict[str, float] = {}
        for symbol, q in qty.items():
            h = meta[symbol]
            if h.is_option and q != 0:
                per_und.setdefault(h.underlying, []).append((h.strike, h.is_call, q))
            elif not h.is_option:
                shares[h.underlying] = shares.get(h.underlying, 0.0) + q
        total = sum(option_requirement(legs, shares.get(u, 0.0)) for u, legs in per_und.items())
        if extra is None:
            self._collateral = total
        return total

    def equity(self) -> float:
        """Cash plus marked holdings."""
        return self.cash + sum(h.value for h in self.holdings.values())

    def greeks(self) -> GreekExposure:
        """Portfolio Greek exposure (stock contributes delta only)."""
        out = [0.0, 0.0, 0.0, 0.0]
        for h in self.holdings.values():
            units = h.qty * h.multiplier
            if not h.is_option:
                out[0] += units
                continue
            for k, value in enumerate((h.delta, h.gamma, h.vega, h.theta)):
                out[k] += units * value if math.isfinite(value) else 0.0
        return GreekExposure(*out)

    def book(self) -> Book:
        """Frozen :class:`Book` of the current state."""
        positions = tuple(h.position() for h in self.holdings.values())
        return Book.build(self.cash, positions, self.requirement(), self.peak_equity)
