"""Time-series momentum with an optional trend filter and an optional intraday gate (enter
only after a session whose own minute bars confirm the move; see
:mod:`strategies.equity.intraday_gate`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from strategies.base import Param, ParamSpace, register_strategy
from strategies.equity._kernels import (
    momentum_panel,
    momentum_signals,
    rate_of_change,
    rolling_mean,
)
from strategies.equity.intraday_gate import OFF, check_gate
from strategies.equity.signal import SignalStrategy, check_allocation, check_symbols
from strategies.indicators import panel


@dataclass(frozen=True, slots=True)
class MomentumConfig:
    """Config of :class:`Momentum`.

    Attributes:
        symbols: Traded symbols.
        lookback: Rate-of-change lookback in bars, >= 1.
        enter: Enter while the ROC is above this (e.g. 0.05 = +5%).
        leave: Exit while the ROC is below this; must be < ``enter``.
        trend: SMA window of the trend filter (enter only above it, exit below it); 0 disables.
        allocation: Fraction of equity split across symbols.
        intraday_gate: Enter only when the decision session's intraday features pass this gate
            (``"above_vwap"``, ``"last_hour_up"``, ``"orb_up"``; missing minute data: no
            entry); ``"off"`` (the default) disables it. Exits are never gated.
    """

    symbols: tuple[str, ...] = ("SPY",)
    lookback: int = 63
    enter: float = 0.0
    leave: float = -0.02
    trend: int = 200
    allocation: float = 1.0
    intraday_gate: str = OFF

    def __post_init__(self) -> None:
        check_symbols(self.symbols)
        if self.lookback < 1:
            raise ValueError(f"lookback must be >= 1, got {self.lookback}")
        if self.leave >= self.enter:
            raise ValueError(f"leave must be < enter, got leave={self.leave} enter={self.enter}")
        if self.trend < 0 or self.trend == 1:
            raise ValueError(f"trend must be 0 (off) or >= 2, got {self.trend}")
        check_allocation(self.allocation)
        check_gate(self.intraday_gate)

    def lookback_bars(self) -> int:
        """Bars before the first possible signal: the ROC lookback or the trend SMA's window."""
        return max(self.lookback, self.trend)


@register_strategy
class Momentum(SignalStrategy):
    """Enter on positive momentum above the trend; exit when momentum fades or trend breaks."""

    name = "momentum"
    config_cls = MomentumConfig
    __slots__ = ()

    @classmethod
    def param_space(cls) -> ParamSpace:
        """Lookback 21-252, thresholds around zero, trend off/100/200, intraday gate off, close
        above the session VWAP, or last hour up."""
        return ParamSpace(
            (
                Param("lookback", values=(21, 63, 126, 252)),
                Param("enter", values=(0.0, 0.02, 0.05)),
                Param("leave", values=(-0.05, -0.02, 0.0)),
                Param("trend", values=(0, 100, 200)),
                Param("intraday_gate", values=(OFF, "above_vwap", "last_hour_up")),
            ),
            MomentumConfig,
        )

    fused_kernel = "momentum_sweep"  # The fused ROC/trend-table kernel

    @classmethod
    def kernel_point(cls, config: Any) -> tuple:
        """The kernel's point tuple."""
        return (config.lookback, config.enter, config.leave, config.trend)

    def column_signals(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Momentum signals."""
        roc = rate_of_change(close, self.config.lookback)
        if self.config.trend:
            trend = rolling_mean(close, self.config.trend)
        else:
            trend = np.zeros_like(close)
        return momentum_signals(close, roc, trend, self.config.enter, self.config.leave)

    def panel_signals(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Momentum on every column at once (the same values as :meth:`column_signals`)."""
        c = self.config
        roc = panel.rate_of_change(close, c.lookback, threads=1)
        trend = panel.sma(close, c.trend, threads=1) if c.trend else np.zeros_like(close)
        return momentum_panel(close, roc, trend, c.enter, c.leave)
