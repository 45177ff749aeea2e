"""Moving-average crossover: long when the fast SMA crosses above the slow SMA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from strategies.base import Param, ParamSpace, register_strategy
from strategies.equity._kernels import cross_panel, cross_signals, rolling_mean
from strategies.equity.signal import SignalStrategy, check_allocation, check_symbols
from strategies.indicators import panel


@dataclass(frozen=True, slots=True)
class MACrossoverConfig:
    """Config of :class:`MACrossover`.

    Attributes:
        symbols: Traded symbols.
        fast: Fast SMA window (bars), >= 1 and < ``slow``.
        slow: Slow SMA window (bars).
        allocation: Fraction of equity split across symbols.
    """

    symbols: tuple[str, ...] = ("SPY",)
    fast: int = 10
    slow: int = 50
    allocation: float = 1.0

    def __post_init__(self) -> None:
        check_symbols(self.symbols)
        if self.fast < 1:
            raise ValueError(f"fast must be >= 1, got {self.fast}")
        if self.fast >= self.slow:
            raise ValueError(f"fast must be < slow (fast >= slow: {self.fast} >= {self.slow})")
        check_allocation(self.allocation)

    def lookback_bars(self) -> int:
        """Bars before the first possible crossing: the slow SMA's window."""
        return self.slow


@register_strategy
class MACrossover(SignalStrategy):
    """Enter when the fast SMA crosses above the slow SMA; exit when it crosses below."""

    name = "ma_crossover"
    config_cls = MACrossoverConfig
    __slots__ = ()

    @classmethod
    def param_space(cls) -> ParamSpace:
        """Fast 5-50 by 5 and slow 20-200 by 10, fast < slow."""
        return ParamSpace(
            (
                Param("fast", low=5, high=50, step=5, integer=True),
                Param("slow", low=20, high=200, step=10, integer=True),
            ),
            MACrossoverConfig,
        )

    fused_kernel = "ma_crossover_sweep"  # The fused SMA-table kernel

    @classmethod
    def kernel_point(cls, config: Any) -> tuple:
        """The kernel's point tuple."""
        return (config.fast, config.slow)

    def column_signals(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crossings of the fast over the slow SMA."""
        fast = rolling_mean(close, self.config.fast)
        slow = rolling_mean(close, self.config.slow)
        return cross_signals(fast, slow)

    def panel_signals(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crossings on every column at once (the same values as :meth:`column_signals`)."""
        fast = panel.sma(close, self.config.fast, threads=1)
        return cross_panel(fast, panel.sma(close, self.config.slow, threads=1))
