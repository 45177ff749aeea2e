"""The book a stress test revalues: option and stock positions flattened into numpy arrays.

A position is an option (an OCC symbol, or underlying, right, strike and expiry) or a stock,
with a signed quantity, a contract multiplier and, for options, the implied volatility it is
marked at. :meth:`StressBook.build` turns positions plus the current spots into the arrays the
scenario kernels read; :meth:`StressBook.from_arrays` takes the arrays directly (a 10,000-leg
book without per-position Python objects). Time to expiry counts calendar days (ACT/365, as
:mod:`contracts.greeks` and QuantLib's ``Actual365Fixed``); an option on its expiry date is
worth its intrinsic value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np

from strategies import occ
from strategies.models import OPTION_MULTIPLIER

DAYS_PER_YEAR = 365.0


@dataclass(frozen=True, slots=True)
class OptionPosition:
    """A signed holding of one option contract.

    Attributes:
        underlying: Underlying symbol (the spot key).
        right: ``"C"`` or ``"P"``.
        strike: Strike price.
        expiry: Expiration date.
        qty: Contracts held (negative = short).
        iv: Implied volatility the position is marked at (decimal, 0.25 = 25%).
        multiplier: Shares per contract.
    """

    underlying: str
    right: Literal["C", "P"]
    strike: float
    expiry: date
    qty: float
    iv: float
    multiplier: float = OPTION_MULTIPLIER

    @classmethod
    def from_occ(
        cls, symbol: str, qty: float, iv: float, multiplier: float = OPTION_MULTIPLIER
    ) -> OptionPosition:
        """The position in OCC ``symbol`` (``O:`` prefix and OSI spacing accepted)."""
        s = occ.parse(symbol)
        return cls(s.root, s.right, s.strike, s.expiry, qty, iv, multiplier)


@dataclass(frozen=True, slots=True)
class StockPosition:
    """A signed holding of shares (the underlying itself, or a hedge)."""

    symbol: str
    qty: float


Position = OptionPosition | StockPosition


@dataclass(frozen=True, slots=True)
class StressBook:
    """Arrays of one book, option legs and stock legs, ready for the scenario kernels.

    Attributes:
        underlyings: The spot keys; ``spot[i]`` is the spot of ``underlyings[i]``.
        spot: Current spot per underlying.
        und: Underlying index of each option leg.
        is_call: Call flag per option leg.
        strike: Strike per option leg.
        t: Years to expiry per option leg at the valuation date.
        iv: Implied volatility per option leg.
        units: Signed shares controlled per option leg (qty x multiplier).
        rate: Continuously compounded risk-free rate per option leg.
        div: Continuous dividend yield per option leg.
        stock_und: Underlying index of each stock leg.
        stock_qty: Signed shares per stock leg.
    """

    underlyings: tuple[str, ...]
    spot: np.ndarray
    und: np.ndarray
    is_call: np.ndarray
    strike: np.ndarray
    t: np.ndarray
    iv: np.ndarray
    units: np.ndarray
    rate: np.ndarray
    div: np.ndarray
    stock_und: np.ndarray
    stock_qty: np.ndarray

    @property
    def n_options(self) -> int:
        """Number of option legs."""
        return int(self.strike.size)

    @classmethod
    def from_arrays(
        cls,
        spots: Mapping[str, float],
        underlying: Sequence[str] | np.ndarray,
        is_call: Any,
        strike: Any,
        t: Any,
        iv: Any,
        units: Any,
        *,
        rate: Any = 0.0,
        div: Any = 0.0,
        stock: Mapping[str, float] | None = None,
    ) -> StressBook:
        """A book from per-leg arrays (``t`` in years, ``units`` = signed qty x multiplier).

        Raises:
            ValueError: naming the first bad leg (unknown underlying, non-positive strike or
                spot, negative time or vol, non-finite numbers).
        """
        names = tuple(spots)
        index = {name: i for i, name in enumerate(names)}
        legs = np.asarray(underlying, dtype=object)
        unknown = [u for u in dict.fromkeys(legs.tolist()) if u not in index]
        stock = dict(stock or {})
        unknown += [u for u in stock if u not in index]
        if unknown:
            raise ValueError(
                f"no spot for underlying(s) {unknown[:5]}; pass spots for every underlying held"
            )
        n = legs.size

        def leg_array(a: Any, dtype: Any = np.float64) -> np.ndarray:
            return np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=dtype), (n,)))

        book = cls(
            names,
            np.array([float(spots[u]) for u in names], dtype=np.float64),
            np.array([index[u] for u in legs.tolist()], dtype=np.int64),
            leg_array(is_call, np.bool_),
            leg_array(strike),
            leg_array(t),
            leg_array(iv),
            leg_array(units),
            leg_array(rate),
            leg_array(div),
            np.array([index[u] for u in stock], dtype=np.int64),
            np.array([float(q) for q in stock.values()], dtype=np.float64),
        )
        book._validate()
        return book

    @classmethod
    def build(
        cls,
        positions: Sequence[Position],
        spots: Mapping[str, float],
        as_of: date,
        *,
        rate: float = 0.0,
        dividend_yields: Mapping[str, float] | None = None,
    ) -> StressBook:
        """A book from positions, valued at ``as_of`` (expired options are refused)."""
        yields = dict(dividend_yields or {})
        options = [p for p in positions if isinstance(p, OptionPosition)]
        stock: dict[str, float] = {}
        for p in positions:
            if isinstance(p, StockPosition):
                stock[p.symbol] = stock.get(p.symbol, 0.0) + float(p.qty)
        expired = [p for p in options if p.expiry < as_of]
        if expired:
            p = expired[0]
            raise ValueError(
                f"{p.underlying} {p.strike:g}{p.right} expired {p.expiry} before the valuation "
                f"date {as_of}; settle it before stressing the book"
            )
        return cls.from_arrays(
            spots,
            [p.underlying for p in options],
            [p.right == "C" for p in options],
            [p.strike for p in options],
            [(p.expiry - as_of).days / DAYS_PER_YEAR for p in options],
            [p.iv for p in options],
            [p.qty * p.multiplier for p in options],
            rate=rate,
            div=[yields.get(p.underlying, 0.0) for p in options],
            stock=stock,
        )

    def _validate(self) -> None:
        checks = (
            ("strike", self.strike, lambda a: a > 0),
            ("time to expiry", self.t, lambda a: a >= 0),
            ("iv", self.iv, lambda a: a >= 0),
            ("qty x multiplier", self.units, lambda a: np.isfinite(a)),
            ("rate", self.rate, lambda a: np.isfinite(a)),
            ("dividend yield", self.div, lambda a: np.isfinite(a)),
        )
        for name, values, ok in checks:
            bad = np.flatnonzero(~(np.isfinite(values) & ok(values)))
            if bad.size:
                i = int(bad[0])
                raise ValueError(
                    f"option leg {i} ({self.underlyings[self.und[i]]}) has {name} {values[i]!r}; "
                    f"{bad.size} leg(s) need a finite, valid {name}"
                )
        for name, s in zip(self.underlyings, self.spot, strict=True):
            if not (math.isfinite(s) and s > 0):
                raise ValueError(f"spot of {name} is {s!r}; it must be a positive price")
