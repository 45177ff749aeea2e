"""Shared machinery of equity signal strategies: the vectorized form and the ``decide()`` built
on it, so a live decision at bar ``t`` is exactly the vectorized signal at row ``t``."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from strategies.base import Strategy, strategy_registry
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
    ``symbols`` (traded symbols), ``allocation`` (fraction of equity per symbol) and
    ``lookback_bars()``.

    A registered signal family is also a sweep declaration, the only one: the research pipeline
    generates its ``<name>_sweep`` asset, its walk-forward and its candidate gating from

    - :meth:`param_space`: the grid (and the random-search space);
    - the config's ``lookback_bars()``: bars of history before the variant's first possible
      signal (:meth:`lookback`; a point needing more than half the sample is not swept);
    - :meth:`sweep_fast_path`: the compiled re-simulation of many points that every sweep
      checks vectorbt against. The default runs the family's own :meth:`signals` through the
      compiled ``from_signals`` state machine; a family with a fused kernel names it in
      ``fused_kernel`` (a function of :mod:`strategies.backtest.signal_fastpath` taking
      ``(close, [kernel_point(config), ...], fees=, slippage=, init_cash=, threads=)``) and
      maps a validated config to the kernel's tuple in :meth:`kernel_point`;
    - ``sweep``: set it False to register a family the pipeline does not sweep.
    """

    sweep: ClassVar[bool] = True
    fused_kernel: ClassVar[str | None] = None

    __slots__ = ()

    @classmethod
    def check_declaration(cls) -> None:
        """Also: the config has ``symbols``, ``allocation`` and ``lookback_bars()``."""
        super().check_declaration()
        config = cls.config_cls()
        missing = [f for f in ("symbols", "allocation") if not hasattr(config, f)]
        if not callable(getattr(config, "lookback_bars", None)):
            missing.append("lookback_bars()")
        if missing:
            raise TypeError(f"{cls.name}: {cls.config_cls.__name__} lacks {', '.join(missing)}")

    @classmethod
    def lookback(cls, params: Mapping[str, Any]) -> int:
        """Bars before variant ``params``' first possible signal (ValueError when invalid)."""
        return int(cls.param_space().validate(params).lookback_bars())

    @classmethod
    def kernel_point(cls, config: Any) -> tuple:
        """A validated config as the ``fused_kernel``'s point tuple (families with a kernel)."""
        raise NotImplementedError(f"{cls.name} declares no fused sweep kernel")

    @classmethod
    def sweep_fast_path(
        cls,
        close: np.ndarray,
        points: Sequence[Mapping[str, Any]],
        *,
        fees: float,
        slippage: float,
        init_cash: float,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Total return and trade count of every (point, symbol), shape ``(points, symbols)``,
        as vectorbt's ``from_signals(close, entries, exits, fees=, slippage=, init_cash=)``.

        Default: each point's :meth:`signals` through the compiled state machine
        (:func:`strategies.backtest.signal_fastpath.simulate_signals`), or the family's
        ``fused_kernel`` when it declares one.
        """
        from strategies.backtest import signal_fastpath as fp

        if cls.fused_kernel is not None:
            kernel = getattr(fp, cls.fused_kernel)
            configs = [cls.param_space().validate(p) for p in points]
            frame = kernel(
                close,
                [cls.kernel_point(c) for c in configs],
                fees=fees,
                slippage=slippage,
                init_cash=init_cash,
                threads=threads,
            )
            return fp.per_point(frame, len(points))

        arr = as_2d(close)
        if not points:
            return np.empty((0, arr.shape[1])), np.empty((0, arr.shape[1]), dtype=np.int64)
        sigs = [cls(cls.param_space().validate(p)).signals(arr) for p in points]
        ret, trades = fp.simulate_signals(
            np.tile(arr, (1, len(points))),
            np.hstack([e for e, _ in sigs]),
            np.hstack([x for _, x in sigs]),
            fees=fees,
            slippage=slippage,
            init_cash=init_cash,
            threads=threads,
        )
        return ret.reshape(len(points), arr.shape[1]), trades.reshape(len(points), arr.shape[1])

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


def signal_families() -> dict[str, type[SignalStrategy]]:
    """Every registered signal family the research pipeline sweeps, by name (sorted)."""
    registry = strategy_registry()
    return {
        name: cls
        for name, cls in sorted(registry.items())
        if issubclass(cls, SignalStrategy) and cls.sweep
    }
