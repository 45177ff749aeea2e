"""RSI mean reversion: buy oversold, sell overbought."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from strategies.base import Param, ParamSpace, register_strategy
from strategies.equity._kernels import band_signals, rsi_wilder
from strategies.equity.signal import SignalStrategy, check_allocation, check_symbols
from strategies.indicators import panel


@dataclass(frozen=True, slots=True)
class RSIReversionConfig:
    """Config of :class:`RSIReversion`.

    Attributes:
        symbols: Traded symbols.
        window: RSI window (Wilder), >= 2.
        lower: Enter while RSI is below this level.
        upper: Exit while RSI is above this level (``lower < upper``, both in (0, 100)).
        allocation: Fraction of equity split across symbols.
    """

    symbols: tuple[str, ...] = ("SPY",)
    window: int = 14
    lower: float = 30.0
    upper: float = 70.0
    allocation: float = 1.0

    def __post_init__(self) -> None:
        check_symbols(self.symbols)
        if self.window < 2:
            raise ValueError(f"window must be >= 2, got {self.window}")
        if not 0.0 < self.lower < self.upper < 100.0:
            raise ValueError(
                f"need 0 < lower < upper < 100, got lower={self.lower} upper={self.upper}"
            )
        check_allocation(self.allocation)

    def lookback_bars(self) -> int:
        """Three RSI windows: Wilder's smoothing needs about that long to forget its seed."""
        return 3 * self.window


@register_strategy
class RSIReversion(SignalStrategy):
    """Enter while RSI < lower; exit while RSI > upper."""

    name = "rsi_reversion"
    config_cls = RSIReversionConfig
    __slots__ = ()

    @classmethod
    def param_space(cls) -> ParamSpace:
        """Window 7-28, lower 20-40, upper 60-80."""
        return ParamSpace(
            (
                Param("window", values=(7, 10, 14, 21, 28)),
                Param("lower", low=20.0, high=40.0, step=5.0),
                Param("upper", low=60.0, high=80.0, step=5.0),
            ),
            RSIReversionConfig,
        )

    fused_kernel = "rsi_reversion_sweep"  # The fused RSI-table kernel

    @classmethod
    def kernel_point(cls, config: Any) -> tuple:
        """The kernel's point tuple."""
        return (config.window, config.lower, config.upper)

    def column_signals(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RSI band signals."""
        rsi = rsi_wilder(close, self.config.window)
        return band_signals(rsi, self.config.lower, self.config.upper)

    def panel_signals(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RSI bands on every column at once (the same values as :meth:`column_signals`)."""
        rsi = panel.rsi(close, self.config.window, threads=1)
        return band_signals(rsi, self.config.lower, self.config.upper)
