"""Equity signal strategies: moving-average crossover, momentum/trend, RSI mean reversion."""

from strategies.equity.ma_crossover import MACrossover, MACrossoverConfig
from strategies.equity.momentum import Momentum, MomentumConfig
from strategies.equity.rsi_reversion import RSIReversion, RSIReversionConfig
from strategies.equity.signal import SignalStrategy

__all__ = [
    "MACrossover",
    "MACrossoverConfig",
    "Momentum",
    "MomentumConfig",
    "RSIReversion",
    "RSIReversionConfig",
    "SignalStrategy",
]
