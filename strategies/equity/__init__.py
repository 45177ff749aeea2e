"""Equity signal strategies: moving-average crossover, momentum/trend, RSI mean reversion,
and intraday VWAP reversion on minute bars (``timeframe = "1m"``).

Each module declares one family (config with ``lookback_bars()``, parameter space, signals,
optional fused fast path) and registers it with ``@register_strategy``; importing it here is
what registers it. The research pipeline sweeps every registered signal family.
"""

from strategies.equity.ma_crossover import MACrossover, MACrossoverConfig
from strategies.equity.momentum import Momentum, MomentumConfig
from strategies.equity.rsi_reversion import RSIReversion, RSIReversionConfig
from strategies.equity.signal import SignalStrategy, signal_families
from strategies.equity.vwap_reversion import VWAPReversion, VWAPReversionConfig

__all__ = [
    "MACrossover",
    "MACrossoverConfig",
    "Momentum",
    "MomentumConfig",
    "RSIReversion",
    "RSIReversionConfig",
    "SignalStrategy",
    "signal_families",
    "VWAPReversion",
    "VWAPReversionConfig",
]
