"""Per-cycle inputs of the risk engine: books, account aggregates and open-order counts.

Computed once per cycle and updated incrementally as orders go out (conservatively: an order
sent counts fully toward account positions and Greeks until the next cycle recomputes them).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

from contracts.limits import AccountLimits, RiskLimits
from live.book import Ledger, multiplier
from live.orders.reports import AccountReport, OrderTicket, Quote
from live.risk.account_rules import after
from live.risk.rules import RiskContext, greek_delta
from strategies.models import Book, GreekExposure

_OCC = re.compile(r"^[A-Z0-9]{1,6}\d{6}[CP]\d{8}$")


class RiskInputs:
    """Builds :class:`RiskContext` objects for one cycle."""

    def __init__(
        self,
        ledger: Ledger,
        quotes: Mapping[str, Quote],
        account: AccountReport | None,
        account_limits: AccountLimits,
        open_by_dep: Counter[str],
        now: datetime,
        capital: Callable[[str], float],
        peaks: Mapping[str, float],
    ) -> None:
        self.ledger, self.quotes, self.account = ledger, quotes, account
        self.account_limits, self.now = account_limits, now
        self.open_by_dep = open_by_dep
        self.capital, self.peaks = capital, peaks
        self.positions = ledger.totals()
        self.by_deployment: dict[str, dict[str, float]] = {}
        for (dep, symbol), (qty, _, _) in ledger.positions_map().items():
            self.by_deployment.setdefault(dep, {})[symbol] = qty
        self.greeks = account_greeks(self.positions, quotes)
        self._books: dict[str, Book] = {}

    def book(self, dep_id: str) -> Book:
        """The deployment's book (cached until :meth:`sent` invalidates it)."""
        book = self._books.get(dep_id)
        if book is None:
            book = self.ledger.book(
                dep_id, self.capital(dep_id), self.quotes, self.peaks.get(dep_id, 0.0)
            )
            self._books[dep_id] = book
        return book

    def context(self, dep_id: str, limits: RiskLimits) -> RiskContext:
        """The rules' view of ``dep_id`` and the account now."""
        equity = self.account.equity if self.account is not None else 0.0
        return RiskContext(
            dep_id, limits, self.account_limits, self.book(dep_id), self.positions, self.greeks,
            equity, self.open_by_dep[dep_id], sum(self.open_by_dep.values()), self.quotes,
            self.now, self.by_deployment)  # fmt: skip

    def sent(self, ticket: OrderTicket) -> None:
        """Count an order that went out (positions, Greeks, open orders, the book)."""
        dep = ticket.deployment_id
        self.open_by_dep[dep] += 1
        self._books.pop(dep, None)
        positions = dict(self.positions)
        qty = ticket.order_qty
        for leg in ticket.intent.legs:
            positions[leg.symbol] = positions.get(leg.symbol, 0.0) + leg.sign * leg.ratio_qty * qty
        self.positions = positions
        self.by_deployment[dep] = after(self.by_deployment.get(dep, {}), ticket)
        add = greek_delta(ticket, self.quotes)
        g = self.greeks
        self.greeks = replace(
            g,
            delta=g.delta + add.delta,
            gamma=g.gamma + add.gamma,
            vega=g.vega + add.vega,
            theta=g.theta + add.theta,
        )


def account_greeks(positions: Mapping[str, float], quotes: Mapping[str, Quote]) -> GreekExposure:
    """Account Greeks in position units from quantities and quote Greeks."""
    out = [0.0, 0.0, 0.0, 0.0]
    for symbol, qty in positions.items():
        q = quotes.get(symbol)
        if q is None:
            continue
        units = qty * multiplier("us_option" if _OCC.match(symbol) else "us_equity")
        for k, g in enumerate(q.greeks):
            out[k] += units * g if g == g else 0.0  # NaN Greeks count as 0
    return GreekExposure(*out)
