"""Equity signal strategies: moving-average crossover, momentum/trend, RSI mean reversion.

Each module declares one family (config with ``lookback_bars()``, parameter space, signals,
optional fused fast path) and registers it with ``@register_strategy``; importing it here is
what registers it. The research pipeline sweeps every registered signal family.
"""

from strategies.equity.ma_crossover import MACrossover, MACrossoverConfig
from strategies.equity.momentum import Momentum, MomentumConfig
from strategies.equity.rsi_reversion import RSIReversion, RSIReversionConfig
from strategies.equity.signal import SignalStrategy, signal_families

__all__ = [
    "MACrossover",
    "MACrossoverConfig",
    "Momentum",
    "MomentumConfig",
    "RSIReversion",
    "RSIReversionConfig",
    "SignalStrategy",
    "signal_families",
]
