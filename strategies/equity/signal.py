"""Shared machinery of equity signal strategies: the vectorized form and the ``decide()`` built
on it, so a live decision at bar ``t`` is exactly the vectorized signal at row ``t``."""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import numpy as np
import pandas as pd

from strategies.base import Strategy
from strategies.models import AssetClass, Book, Leg, MarketSnapshot, OrderIntent, Side


def as_2d(close: Any) -> np.ndarray:
    """Close prices as a C-contiguous float64 (bars, columns) array."""
    arr = close.to_numpy() if isinstance(close, pd.Series | pd.DataFrame) else np.asarray(close)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"close must be 1-D or 2-D, got {arr.ndim} dimensions")
    return np.ascontiguousarray(arr)


def like(result: np.ndarray, close: Any) -> Any:
    """Shape a (bars, columns) boolean result like ``close`` (pandas keeps index/columns)."""
    if isinstance(close, pd.DataFrame):
        return pd.DataFrame(result, index=close.index, columns=close.columns)
    if isinstance(close, pd.Series):
        return pd.Series(result[:, 0], index=close.index, name=close.name)
    return result[:, 0] if np.ndim(close) == 1 else result


class SignalStrategy(Strategy):
    """An equity strategy defined by vectorized entry/exit signals on close prices.

    Subclasses implement :meth:`column_signals` for one close series; the config must have
    ``symbols`` (traded symbols) and ``allocation`` (fraction of equity per symbol).
    """

    __slots__ = ()

    @abstractmethod
    def column_signals(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Entries and exits for one contiguous float64 close series."""

    def signals(self, close: Any) -> tuple[Any, Any]:
        """Vectorized entries/exits for close prices (numpy 1-D/2-D or pandas), shaped alike.

        Row ``t`` depends only on rows ``<= t`` (no look-ahead).
        """
        arr = as_2d(close)
        entries = np.zeros(arr.shape, dtype=np.bool_)
        exits = np.zeros(arr.shape, dtype=np.bool_)
        for j in range(arr.shape[1]):
            entries[:, j], exits[:, j] = self.column_signals(np.ascontiguousarray(arr[:, j]))
        return like(entries, close), like(exits, close)

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        """Buy on an entry when flat, sell everything on an exit when long (conflicts ignored,
        as vectorbt's default ``upon_long_conflict='ignore'``)."""
        intents: list[OrderIntent] = []
        for symbol in self.config.symbols:
            close = snapshot.close_array(symbol)
            if close.size < 2:
                continue
            entries, exits = self.column_signals(close)
            entry, exit_ = bool(entries[-1]), bool(exits[-1])
            held = book.shares(symbol)
            if held > 0 and exit_ and not entry:
                intents.append(self._order(symbol, Side.SELL, held, "exit signal"))
            elif held == 0 and entry and not exit_:
                qty = self._entry_qty(book, snapshot.prices.get(symbol, float(close[-1])))
                if qty >= 1:
                    intents.append(self._order(symbol, Side.BUY, qty, "entry signal"))
        return intents

    def _entry_qty(self, book: Book, price: float) -> int:
        budget = min(
            book.buying_power, book.equity * self.config.allocation / len(self.config.symbols)
        )
        if not math.isfinite(price) or price <= 0 or budget <= 0:
            return 0
        return int(budget // price)

    def _order(self, symbol: str, side: Side, qty: float, reason: str) -> OrderIntent:
        leg = Leg(symbol, side, 1, AssetClass.US_EQUITY)
        return OrderIntent(self.name, (leg,), qty, tag=side.value, reason=reason)


def check_symbols(symbols: tuple[str, ...]) -> None:
    """ValueError unless ``symbols`` is a non-empty tuple of unique names."""
    if not isinstance(symbols, tuple) or not symbols or len(set(symbols)) != len(symbols):
        raise ValueError(f"symbols must be a non-empty tuple of unique names, got {symbols!r}")


def check_allocation(allocation: float) -> None:
    """ValueError unless ``0 < allocation <= 1``."""
    if not 0.0 < allocation <= 1.0:
        raise ValueError(f"allocation must be in (0, 1], got {allocation}")
