"""Typed, numpy-backed read access to one session's option chain (a polars DataFrame)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import polars as pl

from strategies.models import CHAIN_COLUMNS, CHAIN_FLOAT_COLUMNS, Right
from strategies.occ import OptionSymbol


def occ_symbol(root: str, expiry: date, right: Right | str, strike: float) -> str:
    """Format (and validate) an OCC option symbol, e.g. ``SPY240426C00555000``."""
    side: Literal["C", "P"] = "C" if Right(right) is Right.CALL else "P"
    return OptionSymbol(root, expiry, side, float(strike)).to_occ()


@dataclass(frozen=True, slots=True)
class ContractQuote:
    """One row of a chain: a contract's terms, quote and Greeks (per share)."""

    contract: str
    underlying: str
    expiry: date
    strike: float
    right: Right
    bid: float
    ask: float
    mid: float
    underlying_price: float
    dte: int
    iv: float
    delta: float
    gamma: float
    vega: float
    theta: float

    @property
    def spread(self) -> float:
        """Ask minus bid."""
        return self.ask - self.bid

    @property
    def intrinsic(self) -> float:
        """Intrinsic value per share at the chain's underlying price."""
        sign = 1.0 if self.right is Right.CALL else -1.0
        return max(sign * (self.underlying_price - self.strike), 0.0)


class OptionChainView:
    """Read-only chain of one underlying and session with cached numpy columns.

    Strategies select contracts with numpy masks over :meth:`col` arrays (cheap, no per-row
    Python) and turn the chosen row index into a :class:`ContractQuote` with :meth:`quote_at`.
    """

    __slots__ = ("_cache", "frame")

    def __init__(self, frame: pl.DataFrame) -> None:
        present = set(frame.columns)
        missing = [c for c in CHAIN_COLUMNS if c not in present]
        if missing:
            raise ValueError(f"option chain lacks columns {missing}")
        self.frame = frame
        self._cache: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self.frame.height

    def col(self, name: str) -> np.ndarray:
        """Column as numpy (floats for prices/Greeks, ``is_call`` bool, ``expiry`` int days)."""
        arr = self._cache.get(name)
        if arr is None:
            if name == "is_call":
                arr = (self.frame.get_column("right") == Right.CALL.value).to_numpy()
            elif name == "expiry":
                arr = self.frame.get_column("expiry").to_physical().to_numpy()
            elif name in CHAIN_FLOAT_COLUMNS:  # to_numpy turns float nulls into NaN
                arr = np.asarray(self.frame.get_column(name).to_numpy(), dtype=np.float64)
            else:
                arr = self.frame.get_column(name).to_numpy()
            self._cache[name] = arr
        return arr

    @property
    def underlying_price(self) -> float:
        """Underlying price (first row; constant within a session's chain)."""
        return float(self.col("underlying_price")[0]) if len(self) else float("nan")

    def quote_at(self, row: int) -> ContractQuote:
        """The contract at row index ``row``."""
        r = self.frame.row(int(row), named=True)
        return ContractQuote(
            contract=r["contract"],
            underlying=r["underlying"],
            expiry=r["expiry"],
            strike=float(r["strike"]),
            right=Right(r["right"]),
            bid=float(r["bid"]),
            ask=float(r["ask"]),
            mid=float(r["mid"]),
            underlying_price=float(r["underlying_price"]),
            dte=int(r["dte"]),
            iv=_f(r["iv"]),
            delta=_f(r["delta"]),
            gamma=_f(r["gamma"]),
            vega=_f(r["vega"]),
            theta=_f(r["theta"]),
        )

    def quote(self, contract: str) -> ContractQuote | None:
        """The quote of ``contract``, or None when it is not in this chain."""
        hits = np.flatnonzero((self.frame.get_column("contract") == contract).to_numpy())
        return None if hits.size == 0 else self.quote_at(int(hits[0]))


def _f(value: float | None) -> float:
    return float("nan") if value is None else float(value)
