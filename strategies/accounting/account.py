"""The account: cash, holdings, marks, collateral, buying power, realized and unrealized P&L.

One implementation for every place that keeps positions: the options backtest engine, the live
runner's per-deployment books, the simulated broker and the lake's daily live P&L. Conventions:

* ``qty`` is signed (contracts for options, shares for stock); prices and marks are per share and
  a unit is worth ``price x multiplier`` (:func:`~strategies.accounting.holding.multiplier`).
* A trade moves cash by ``-qty x price x multiplier - fees``. Opening or flipping sets the average
  price to the fill; adding averages it; reducing keeps it and realizes
  ``closed x (price - avg_price) x multiplier`` (fees are counted apart, in :attr:`Account.fees`).
* Exercise and assignment are physical: the contract leaves the book at a price of zero (its
  premium is realized) and the shares trade at the strike. Expiring worthless closes at zero.
* ``equity = cash + market value``; ``buying power = cash - collateral``
  (:mod:`strategies.accounting.collateral`; a cash account, no margin on stock), and
  ``equity - starting cash = realized + unrealized - fees + income``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from copy import copy
from dataclasses import dataclass, replace
from datetime import date

from strategies.accounting.collateral import requirement
from strategies.accounting.holding import EXERCISE_THRESHOLD, Holding
from strategies.models import Book, GreekExposure, Position

EPS = 1e-9
Trade = tuple[Holding, float, float, float]  # (holding or template, signed qty, price, fees)


@dataclass(frozen=True, slots=True)
class Settlement:
    """A settled option: what happened, the shares delivered and its P&L against the last mark.

    Attributes:
        holding: The option as it was held before settling.
        kind: ``exercise`` | ``assignment`` | ``early_assignment`` | ``expiry``.
        shares: Signed shares received (+) or delivered (-).
        spot: Underlying price used.
        pnl: ``qty x multiplier x (settlement value - mark)``, before fees.
        fees: Fees charged (assignment fees).
        realized: P&L realized by the settlement (option premium and any stock closed).
    """

    holding: Holding
    kind: str
    shares: float
    spot: float
    pnl: float
    fees: float
    realized: float


@dataclass(frozen=True, slots=True)
class Statement:
    """The account's numbers at one moment (all in dollars)."""

    cash: float
    collateral: float
    buying_power: float
    market_value: float
    equity: float
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    income: float


class Account:
    """Cash and holdings of one book (see the module docstring for the conventions).

    Args:
        cash: Starting cash (0 for a book that counts cash flows and adds its capital on
            :meth:`book`).
        holding_type: Class of holdings the account creates itself (stock delivered by an
            exercise or assignment); engines that subclass :class:`Holding` pass theirs.
    """

    __slots__ = (
        "_collateral", "cash", "fees", "holding_type", "holdings", "income", "peak_equity",
        "realized",
    )  # fmt: skip

    def __init__(self, cash: float = 0.0, holding_type: type[Holding] = Holding) -> None:
        self.cash = cash
        self.holdings: dict[str, Holding] = {}
        self.holding_type = holding_type
        self.realized = 0.0
        self.fees = 0.0
        self.income = 0.0
        self.peak_equity = cash
        self._collateral: float | None = 0.0

    @classmethod
    def from_book(cls, book: Book) -> Account:
        """An account holding what a frozen :class:`Book` shows (for what-if checks)."""
        account = cls(book.cash)
        for p in book.positions:
            account.put(Holding.from_position(p))
        account.peak_equity = book.peak_equity
        return account

    # -- changes -------------------------------------------------------------------------------
    def trade(self, holding: Holding, qty: float, price: float, fees: float = 0.0) -> float:
        """Trade signed ``qty`` of ``holding``'s symbol at ``price`` per share and pay ``fees``.

        ``holding`` is the held one or a template for a new one (copied; its mark, else the
        price, is the first mark). Returns the P&L realized by the trade (before fees)."""
        current = self.holdings.get(holding.symbol)
        if current is None:
            mark = holding.mark if math.isfinite(holding.mark) else price
            current = replace(holding, qty=0.0, avg_price=0.0, mark=mark)
            self.holdings[holding.symbol] = current
        held, new_qty = current.qty, current.qty + qty
        realized = 0.0
        if held * qty < 0:  # reducing, closing or flipping
            closed = min(abs(qty), abs(held)) * (1.0 if held > 0 else -1.0)
            realized = closed * (price - current.avg_price) * current.multiplier
        if held == 0 or (held > 0) != (new_qty > 0) and new_qty != 0:
            current.avg_price = price  # opened or flipped: the remainder was traded at price
        elif abs(new_qty) > abs(held):
            current.avg_price = (current.avg_price * held + price * qty) / new_qty
        current.qty = new_qty
        self.cash -= qty * price * current.multiplier + fees
        self.fees += fees
        self.realized += realized
        if abs(new_qty) < EPS:
            del self.holdings[holding.symbol]
        self._collateral = None
        return realized

    def mark(
        self, symbol: str, price: float, greeks: tuple[float, float, float, float] | None = None
    ) -> None:
        """Mark ``symbol`` at ``price`` per share (a non-finite price keeps the last mark) and,
        for options, set its per-share Greeks."""
        h = self.holdings.get(symbol)
        if h is None:
            return
        if math.isfinite(price):
            h.mark = price
        if greeks is not None and h.is_option:
            h.delta, h.gamma, h.vega, h.theta = greeks

    def receive(self, amount: float) -> None:
        """Cash income that is not a trade (dividends)."""
        self.cash += amount
        self.income += amount

    def put(self, holding: Holding) -> None:
        """Hold ``holding`` as it is (a state restored from a log or a broker), no cash."""
        self.holdings[holding.symbol] = holding
        self._collateral = None

    def remove(self, symbol: str) -> None:
        """Drop a holding without cash (a position the broker no longer shows)."""
        del self.holdings[symbol]
        self._collateral = None

    def settle(self, symbol: str, spot: float, kind: str, fees: float = 0.0) -> Settlement:
        """Exercise or assign the option ``symbol`` physically at its strike (``kind`` exercise,
        assignment or early_assignment; the shares are marked at ``spot``), or let it expire
        worthless (``kind == 'expiry'``)."""
        h = self.holdings[symbol]
        before = copy(h)
        value = h.intrinsic(spot) if kind != "expiry" else 0.0
        mark = h.mark if math.isfinite(h.mark) else h.avg_price
        pnl = h.qty * h.multiplier * (value - mark)
        realized = self.trade(h, -h.qty, 0.0)
        if kind == "expiry":
            return Settlement(before, kind, 0.0, spot, pnl, 0.0, realized)
        shares = before.delivered_shares()
        stock = self.holdings.get(before.underlying) or self.holding_type(
            before.underlying, underlying=before.underlying, mark=spot
        )
        realized += self.trade(stock, shares, before.strike, fees)
        self.mark(before.underlying, spot)
        return Settlement(before, kind, shares, spot, pnl, fees, realized)

    def expiring(self, day: date) -> list[Holding]:
        """Options expiring on or before ``day``."""
        return [
            h
            for h in self.holdings.values()
            if h.is_option and h.expiry is not None and h.expiry <= day
        ]

    def expire(
        self,
        day: date,
        spot_of: Callable[[Holding], float],
        threshold: float = EXERCISE_THRESHOLD,
        assignment_fee: float = 0.0,
    ) -> list[Settlement]:
        """Settle every option expiring on or before ``day``: in the money by at least
        ``threshold`` at ``spot_of(holding)`` is exercised (long) or assigned (short), the rest
        expires worthless (so does a contract whose spot is unknown)."""
        out = []
        for h in self.expiring(day):
            spot = spot_of(h)
            itm = math.isfinite(spot) and h.intrinsic(spot) >= threshold - 1e-12
            kind = ("exercise" if h.qty > 0 else "assignment") if itm else "expiry"
            fees = abs(h.qty) * assignment_fee if itm else 0.0
            out.append(self.settle(h.symbol, spot, kind, fees))
        return out

    # -- what it is worth and what it reserves --------------------------------------------------
    def collateral(self, extra: Iterable[tuple[Holding, float]] = ()) -> float:
        """Collateral of the holdings, or after adding the signed quantities of ``extra``."""
        extra = list(extra)
        if not extra and self._collateral is not None:
            return self._collateral
        qty = {s: h.qty for s, h in self.holdings.items()}
        meta = dict(self.holdings)
        for h, delta in extra:
            qty[h.symbol] = qty.get(h.symbol, 0.0) + delta
            meta.setdefault(h.symbol, h)
        total = requirement((meta[s], q) for s, q in qty.items())
        if not extra:
            self._collateral = total
        return total

    def buying_power(self) -> float:
        """Cash minus collateral."""
        return self.cash - self.collateral()

    def check(self, trades: Sequence[Trade]) -> str | None:
        """Why the account cannot take ``trades`` all at once, or None when it can.

        Buying power after them must stay >= 0, unless they reduce the shortfall (closing
        trades of an account already short of buying power pass)."""
        cash_after = self.cash - sum(q * p * h.multiplier + f for h, q, p, f in trades)
        after = cash_after - self.collateral((h, q) for h, q, _, _ in trades)
        if after < -EPS and after < self.buying_power():
            need = "uncovered short call" if math.isinf(after) else f"buying power {after:,.2f}"
            return f"insufficient buying power: {need} after the order"
        return None

    def market_value(self) -> float:
        """Signed value of the holdings at their marks."""
        return sum(h.market_value for h in self.holdings.values())

    def equity(self) -> float:
        """Cash plus marked holdings."""
        return self.cash + self.market_value()

    def unrealized_pnl(self) -> float:
        """Mark-to-market P&L of the holdings against their average prices."""
        return sum(h.unrealized_pnl for h in self.holdings.values())

    def greeks(self) -> GreekExposure:
        """Portfolio Greek exposure in shares (stock contributes its delta only)."""
        out = [0.0, 0.0, 0.0, 0.0]
        for h in self.holdings.values():
            units = h.qty * h.multiplier
            for k, value in enumerate((h.delta, h.gamma, h.vega, h.theta)):
                out[k] += units * value if math.isfinite(value) else 0.0
        return GreekExposure(*out)

    def positions(self) -> tuple[Position, ...]:
        """Frozen positions, in the order they were opened."""
        return tuple(h.position() for h in self.holdings.values())

    def statement(self, capital: float = 0.0) -> Statement:
        """Cash, collateral, buying power, value and P&L now (``capital``: cash held outside
        the fills, e.g. a live deployment's capital on a book that counts cash flows)."""
        cash, collateral, value = self.cash + capital, self.collateral(), self.market_value()
        return Statement(
            cash, collateral, cash - collateral, value, cash + value, self.realized,
            self.unrealized_pnl(), self.fees, self.income,
        )  # fmt: skip

    def book(self, capital: float = 0.0, peak_equity: float | None = None) -> Book:
        """The strategy-facing :class:`Book` (``capital`` as in :meth:`statement`)."""
        peak = self.peak_equity if peak_equity is None else peak_equity
        return Book.build(self.cash + capital, self.positions(), self.collateral(), peak)
