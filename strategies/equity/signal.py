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
from strategies.equity.intraday_gate import OFF, DailyInputs, gate_mask, gate_open
from strategies.indicators.panel import as_panel
from strategies.indicators.session_features import IntradayFeatureMatrix
from strategies.models import AssetClass, Book, Leg, MarketSnapshot, OrderIntent, Side


def as_2d(close: Any) -> np.ndarray:
    """Close prices as a C-contiguous float64 (bars, columns) array."""
    return as_panel(close)


def _gated(config: Any) -> bool:
    """True when ``config`` asks for an intraday gate (a family without one never does)."""
    return getattr(config, "intraday_gate", OFF) != OFF


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

    A daily family may gate its entries on the session's intraday features
    (:mod:`strategies.equity.intraday_gate`): a config field ``intraday_gate`` (``"off"`` by
    default) listed in its ``param_space``. The pipeline then loads the features with the closes
    and passes :class:`~strategies.equity.intraday_gate.DailyInputs` to ``signals()`` and the
    fast path (:meth:`uses_intraday_features`).
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
    def uses_intraday_features(cls) -> bool:
        """True when the family's parameter space sweeps an ``intraday_gate``."""
        return any(p.name == "intraday_gate" for p in cls.param_space().params)

    @property
    def intraday_gate(self) -> str:
        """The config's intraday gate (``"off"`` for a family without one)."""
        return str(getattr(self.config, "intraday_gate", OFF))

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

        if isinstance(close, DailyInputs):
            return cls._gated_fast_path(
                close, points, fees=fees, slippage=slippage, init_cash=init_cash, threads=threads
            )
        if cls.fused_kernel is not None:
            kernel = getattr(fp, cls.fused_kernel)
            configs = [cls.param_space().validate(p) for p in points]
            for config in configs:  # the kernels know no gate: never drop one silently
                if _gated(config):
                    cls(config).require_features(None)
            frame = kernel(
                close,
                [cls.kernel_point(c) for c in configs],
                fees=fees,
                slippage=slippage,
                init_cash=init_cash,
                threads=threads,
            )
            return fp.per_point(frame, len(points))

        arr = as_2d(close)  # each point's signals through the compiled state machine
        return cls.simulate_points(
            arr, arr, points, fees=fees, slippage=slippage, init_cash=init_cash, threads=threads
        )

    @classmethod
    def _gated_fast_path(
        cls, inputs: DailyInputs, points: Sequence[Mapping[str, Any]], **costs: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ungated points on the closes (the family's usual path, fused kernel included),
        gated ones through their masked signals; rows in ``points`` order."""
        gated = [_gated(cls.param_space().validate(p)) for p in points]
        n_sym = inputs.close.shape[1]
        ret = np.empty((len(points), n_sym))
        trades = np.empty((len(points), n_sym), dtype=np.int64)
        for flag in (False, True):
            idx = [k for k, g in enumerate(gated) if g is flag]
            if not idx:
                continue
            subset = [points[k] for k in idx]
            if flag:
                r, t = cls.simulate_points(as_2d(inputs.close), inputs, subset, **costs)
            else:
                r, t = cls.sweep_fast_path(inputs.close, subset, **costs)
            ret[idx], trades[idx] = r, t
        return ret, trades

    @classmethod
    def simulate_points(
        cls,
        prices: np.ndarray,
        source: Any,
        points: Sequence[Mapping[str, Any]],
        *,
        fees: float,
        slippage: float,
        init_cash: float,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Total return and trades per (point, symbol) of each point's ``signals(source)``
        filled at ``prices`` (rows x symbols) by the compiled ``from_signals`` state machine."""
        from strategies.backtest import signal_fastpath as fp

        n_sym = prices.shape[1]
        if not points:
            return np.empty((0, n_sym)), np.empty((0, n_sym), dtype=np.int64)
        sigs = [cls(cls.param_space().validate(p)).signals(source) for p in points]
        ret, trades = fp.simulate_signals(
            np.tile(prices, (1, len(points))),
            np.hstack([e for e, _ in sigs]),
            np.hstack([x for _, x in sigs]),
            fees=fees,
            slippage=slippage,
            init_cash=init_cash,
            threads=threads,
        )
        return ret.reshape(len(points), n_sym), trades.reshape(len(points), n_sym)

    @abstractmethod
    def column_signals(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Entries and exits for one contiguous float64 close series."""

    def panel_signals(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Entries and exits for a C-contiguous float64 (bars, columns) panel: each column's
        :meth:`column_signals`. A family overrides it with its panel kernels
        (:mod:`strategies.indicators.panel`, all columns in one compiled pass) returning the
        same values."""
        entries = np.zeros(close.shape, dtype=np.bool_)
        exits = np.zeros(close.shape, dtype=np.bool_)
        for j in range(close.shape[1]):
            entries[:, j], exits[:, j] = self.column_signals(np.ascontiguousarray(close[:, j]))
        return entries, exits

    def signals(self, close: Any) -> tuple[Any, Any]:
        """Vectorized entries/exits for close prices (numpy 1-D/2-D or pandas), shaped alike,
        or for :class:`~strategies.equity.intraday_gate.DailyInputs` (2-D arrays; entries of
        row ``t`` masked by session ``t``'s intraday gate when the config sets one).

        Row ``t`` depends only on rows ``<= t`` (no look-ahead).

        Raises:
            ValueError: the config sets an ``intraday_gate`` and ``close`` carries no features.
        """
        inputs = close if isinstance(close, DailyInputs) else None
        if inputs is not None:
            close = inputs.close
        entries, exits = self.panel_signals(as_2d(close))
        if self.intraday_gate != OFF:
            entries &= gate_mask(self.require_features(inputs), self.intraday_gate)
        return like(entries, close), like(exits, close)

    def require_features(self, inputs: DailyInputs | None) -> IntradayFeatureMatrix:
        """The intraday features a gated variant reads (ValueError naming the fix without)."""
        if inputs is None:
            raise ValueError(
                f"{self.name} intraday_gate={self.intraday_gate!r} needs the sessions' "
                "intraday features: pass DailyInputs(close, IntradayFeatureMatrix) (the "
                "pipeline's loaders do when the family sweeps intraday_gate)"
            )
        return inputs.intraday

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        """Buy on an entry when flat, sell everything on an exit when long (conflicts ignored,
        as vectorbt's default ``upon_long_conflict='ignore'``)."""
        intents: list[OrderIntent] = []
        for symbol in self.config.symbols:
            close = snapshot.close_array(symbol)
            if close.size < 2:
                continue
            entry, exit_ = self.last_signals(snapshot, symbol, close)
            if entry and self.intraday_gate != OFF:
                # the session's own minute bars (all closed at the daily decision)
                entry = gate_open(snapshot, symbol, self.intraday_gate)
            held = book.shares(symbol)
            if held > 0 and exit_ and not entry:
                intents.append(self._order(symbol, Side.SELL, held, "exit signal"))
            elif held == 0 and entry and not exit_:
                qty = self._entry_qty(book, snapshot.prices.get(symbol, float(close[-1])))
                if qty >= 1:
                    intents.append(self._order(symbol, Side.BUY, qty, "entry signal"))
        return intents

    def last_signals(
        self, snapshot: MarketSnapshot, symbol: str, close: np.ndarray
    ) -> tuple[bool, bool]:
        """Entry and exit at the snapshot's last bar: :meth:`column_signals` of ``close`` (the
        symbol's history) at its last row. A family reading more of the snapshot than closes
        overrides it, keeping it equal to its vectorized signal at that row."""
        entries, exits = self.column_signals(close)
        return bool(entries[-1]), bool(exits[-1])

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
