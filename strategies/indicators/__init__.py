"""Technical indicators on polars frames of bars, TA-Lib compatible, per symbol, no look-ahead.

Input frames hold ``symbol``, ``ts`` (ascending within each symbol; symbols may interleave) and
``open, high, low, close, volume``. Each indicator is a polars expression evaluated over each
symbol (``.over("symbol")``), so row ``t`` depends only on that symbol's rows ``<= t``. Warm-up
rows are null exactly where TA-Lib returns NaN. Inputs must be free of nulls and NaNs.

Multi-output indicators (MACD, Bollinger) and RSI share partitioned sub-expressions; evaluate them
in a ``LazyFrame`` (as ``add_indicators`` does) so polars computes each shared piece once::

    bars.lazy().with_columns(sma("close", 50), *macd("close"), rsi("close")).collect()

For speed, :mod:`strategies.indicators.panel` computes the same indicators on (bars, symbols)
numpy arrays with compiled kernels (every column in one pass, 0.4-1x TA-Lib's per-column C loop);
``add_indicators`` runs those kernels on the frame's symbols, and the signal families use them.
"""

from strategies.indicators.config import IndicatorConfig, add_indicators, indicator_exprs
from strategies.indicators.moving import MACD, ema, macd, sma
from strategies.indicators.oscillators import (
    BollingerBands,
    atr,
    bollinger,
    realized_vol,
    rsi,
    true_range,
)
from strategies.indicators.resample import daily_from_minute, resample_bars

__all__ = [
    "MACD",
    "BollingerBands",
    "IndicatorConfig",
    "add_indicators",
    "atr",
    "bollinger",
    "daily_from_minute",
    "ema",
    "indicator_exprs",
    "macd",
    "realized_vol",
    "resample_bars",
    "rsi",
    "sma",
    "true_range",
]
