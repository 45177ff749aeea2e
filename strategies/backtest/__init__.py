"""Backtest engines: the options day loop over a chain archive and the equity signal fast path."""

from strategies.backtest.archive import ChainArchive, bars_from_chains
from strategies.backtest.config import EarlyAssignment, FeeSchedule, OptionsBacktestConfig
from strategies.backtest.options_engine import OptionsEngine, run_options_backtest
from strategies.backtest.results import ATTRIBUTION_COLUMNS, OptionsBacktestResult
from strategies.backtest.signal_fastpath import (
    ma_crossover_sweep,
    ma_pairs,
    momentum_sweep,
    rsi_reversion_sweep,
    simulate_signals,
)
from strategies.backtest.synthetic import synthetic_chains

__all__ = [
    "ATTRIBUTION_COLUMNS",
    "ChainArchive",
    "EarlyAssignment",
    "FeeSchedule",
    "OptionsBacktestConfig",
    "OptionsBacktestResult",
    "OptionsEngine",
    "bars_from_chains",
    "ma_crossover_sweep",
    "ma_pairs",
    "momentum_sweep",
    "rsi_reversion_sweep",
    "run_options_backtest",
    "simulate_signals",
    "synthetic_chains",
]
