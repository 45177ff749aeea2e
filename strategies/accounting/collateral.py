"""Collateral of a cash account: what its short options reserve out of cash.

The rule, per underlying (a cash account's, trading what Alpaca's options levels 1-3 allow):

* Short calls are first covered by whole lots of the shares held (lowest strikes first): a covered
  call reserves nothing.
* What is left reserves the maximum loss of its payoff at expiry, found at ``S in {0} U strikes``
  (the payoff is piecewise linear between strikes): ``strike x 100`` per cash-secured put, the
  width x 100 for a credit vertical, the wider side for an iron condor, the worst wing for a short
  butterfly, nothing for debit spreads and long options (their premium already left the cash).
* **Naked calls are refused.** A short call covered neither by shares nor by a long call can lose
  without bound, and a cash account cannot hold one (nor does Alpaca allow it at any options
  level: level 3, its highest, adds spreads), so its requirement is ``math.inf``. The backtest
  engine, the simulated broker and the live risk engine all refuse an order that would create
  one (buying power ``-inf`` after the order); a naked call reached anyway (shares sold or
  delivered elsewhere) shows as infinite collateral and ``-inf`` buying power in the
  :class:`~strategies.models.Book`, so only orders that reduce the shortfall pass until it is
  covered or closed.

Premium received stays in cash; short stock is not possible in a cash account and reserves
nothing here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from strategies.accounting.holding import Holding
from strategies.models import OPTION_MULTIPLIER


def option_requirement(options: Iterable[tuple[float, bool, float]], shares: float) -> float:
    """Cash reserved for one underlying's ``options`` (strike, is_call, signed contracts) when
    ``shares`` of it are held (see the module docstring)."""
    lots = int(shares // OPTION_MULTIPLIER) if shares > 0 else 0
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


def requirement(holdings: Iterable[tuple[Holding, float]]) -> float:
    """Collateral of ``(holding, signed qty)`` pairs, underlying by underlying."""
    options: dict[str, list[tuple[float, bool, float]]] = {}
    shares: dict[str, float] = {}
    for h, qty in holdings:
        if h.is_option:
            if qty != 0:
                options.setdefault(h.underlying, []).append((h.strike, h.is_call, qty))
        else:
            shares[h.underlying] = shares.get(h.underlying, 0.0) + qty
    return sum(option_requirement(legs, shares.get(u, 0.0)) for u, legs in options.items())
