"""Positions and cash per deployment, folded from journaled fills (the journal is the truth).

Each deployment's book is a :class:`strategies.accounting.Account`, the accounting the options
backtest, the simulated broker and the lake's live P&L use too: the same average prices,
collateral (spreads and condors by maximum loss, covered calls, naked calls refused), buying
power and P&L. A deployment's account counts cash flows (it starts at 0); its capital is added
when its :class:`Book` is built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from strategies.accounting import Account, Holding, Statement, multiplier
from strategies.models import Book

if TYPE_CHECKING:
    from live.journal.orders import FillRow
    from live.orders.reports import Quote

EPS = 1e-9

__all__ = ["EPS", "Ledger", "mark_at", "multiplier"]


class Ledger:
    """Positions and cash flow of every deployment, from fills."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}

    @classmethod
    def from_fills(cls, fills: Iterable[FillRow]) -> Ledger:
        """The ledger after applying ``fills`` in order."""
        ledger = cls()
        ledger.rebuild(fills)
        return ledger

    def rebuild(self, fills: Iterable[FillRow]) -> None:
        """Forget everything, then apply ``fills`` in order."""
        self.accounts.clear()
        for fill in fills:
            self.apply(fill)

    def apply(self, fill: FillRow) -> None:
        """Book one fill (signed qty: + buys, - sells; settlements close options at 0)."""
        account = self.accounts.setdefault(fill.deployment_id, Account())
        held = account.holdings.get(fill.symbol) or Holding.of(fill.symbol, fill.asset_class)
        account.trade(held, fill.qty, fill.price)

    @property
    def holdings(self) -> Mapping[str, Mapping[str, Holding]]:
        """``deployment -> symbol -> holding`` (read-only)."""
        return MappingProxyType({d: MappingProxyType(a.holdings) for d, a in self.accounts.items()})

    @property
    def cash_flow(self) -> Mapping[str, float]:
        """Net cash each deployment's fills moved (read-only)."""
        return MappingProxyType({d: a.cash for d, a in self.accounts.items()})

    def account(self, dep_id: str) -> Account:
        """The account of ``dep_id`` (an empty one for a deployment without fills)."""
        return self.accounts.setdefault(dep_id, Account())

    def qty(self, dep_id: str, symbol: str) -> float:
        """Signed quantity of ``symbol`` held by ``dep_id``."""
        account = self.accounts.get(dep_id)
        h = None if account is None else account.holdings.get(symbol)
        return 0.0 if h is None else h.qty

    def positions_map(self) -> dict[tuple[str, str], tuple[float, float, str]]:
        """``(deployment, symbol) -> (qty, avg_price, asset_class)`` for non-zero positions."""
        return {
            (d, s): (h.qty, h.avg_price, h.asset_class.value)
            for d, account in self.accounts.items()
            for s, h in account.holdings.items()
            if abs(h.qty) > EPS
        }

    def totals(self) -> dict[str, float]:
        """Account-wide signed quantity per symbol."""
        out: dict[str, float] = {}
        for account in self.accounts.values():
            for s, h in account.holdings.items():
                out[s] = out.get(s, 0.0) + h.qty
        return {s: q for s, q in out.items() if abs(q) > EPS}

    def holders(self, symbol: str) -> list[tuple[str, float]]:
        """Deployments holding ``symbol`` with their signed quantities."""
        return [
            (d, a.holdings[symbol].qty) for d, a in self.accounts.items() if symbol in a.holdings
        ]

    def book(
        self, dep_id: str, capital: float, quotes: Mapping[str, Quote], peak_equity: float = 0.0
    ) -> Book:
        """The strategy-facing :class:`Book` of one deployment, marked at ``quotes``."""
        account = self.account(dep_id)
        mark_at(account, quotes)
        return account.book(capital, peak_equity)

    def statement(self, dep_id: str, capital: float, quotes: Mapping[str, Quote]) -> Statement:
        """Cash, collateral, buying power, equity and P&L of one deployment, marked at
        ``quotes``."""
        account = self.account(dep_id)
        mark_at(account, quotes)
        return account.statement(capital)


def mark_at(account: Account, quotes: Mapping[str, Quote]) -> None:
    """Mark every holding of ``account`` at its quote's mid (and options' Greeks); a symbol
    without a quote keeps its last mark (at first its fill price)."""
    for symbol, h in account.holdings.items():
        q = quotes.get(symbol)
        if q is not None:
            account.mark(symbol, q.mid, q.greeks if h.is_option else None)
