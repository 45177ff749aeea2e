"""Equity signal strategies: vectorized signals, indicator kernels, and decide() orders."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest

from strategies.equity import (
    MACrossover,
    MACrossoverConfig,
    Momentum,
    MomentumConfig,
    RSIReversion,
    RSIReversionConfig,
)
from strategies.equity._kernels import rate_of_change, rolling_mean, rsi_wilder
from strategies.models import NEW_YORK, AssetClass, Book, MarketSnapshot, OrderType, Position, Side


def test_ma_crossover_by_hand() -> None:
    close = np.array([10, 10, 10, 10, 12, 14, 14, 10, 8, 8.0])
    # fast SMA(2): nan 10 10 10 11 13 14 12 9 8
    # slow SMA(3): nan nan 10 10 10.67 12 13.33 12.67 10.67 8.67
    # bar 4: 11 > 10.67 after 10 <= 10 -> entry; bar 7: 12 < 12.67 after 14 >= 13.33 -> exit
    entries, exits = MACrossover(MACrossoverConfig(fast=2, slow=3)).signals(close)
    assert np.flatnonzero(entries).tolist() == [4]
    assert np.flatnonzero(exits).tolist() == [7]


def test_signals_keep_pandas_shape() -> None:
    idx = pd.date_range("2024-01-01", periods=50, freq="D")
    close = pd.DataFrame(
        np.random.default_rng(1).lognormal(0, 0.02, (50, 2)).cumprod(axis=0),
        index=idx,
        columns=["A", "B"],
    )
    entries, exits = RSIReversion(RSIReversionConfig(window=5)).signals(close)
    assert isinstance(entries, pd.DataFrame) and entries.index.equals(idx)
    assert list(exits.columns) == ["A", "B"] and entries.dtypes.eq(bool).all()
    single, _ = RSIReversion(RSIReversionConfig(window=5)).signals(close["A"])
    assert isinstance(single, pd.Series) and single.equals(entries["A"])
    with pytest.raises(ValueError, match="1-D or 2-D"):
        MACrossover().signals(np.ones((2, 2, 2)))


def test_kernels_match_references() -> None:
    x = np.random.default_rng(2).lognormal(0, 0.02, 400).cumprod() * 50
    pd_sma = pd.Series(x).rolling(20).mean().to_numpy()
    np.testing.assert_allclose(rolling_mean(x, 20), pd_sma, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(rate_of_change(x, 10)[10:], x[10:] / x[:-10] - 1, rtol=1e-15)
    talib = pytest.importorskip("talib")
    np.testing.assert_allclose(rsi_wilder(x, 14), talib.RSI(x, 14), rtol=1e-10, equal_nan=True)


def test_momentum_trend_filter() -> None:
    close = np.r_[np.linspace(100, 80, 30), np.linspace(80, 120, 30)]
    on, _ = Momentum(MomentumConfig(lookback=5, enter=0.0, leave=-0.01, trend=20)).signals(close)
    off, _ = Momentum(MomentumConfig(lookback=5, enter=0.0, leave=-0.01, trend=0)).signals(close)
    assert off.sum() > on.sum() > 0  # the filter removes early entries below the 20-day SMA
    first_on, first_off = int(np.argmax(on)), int(np.argmax(off))
    assert first_on > first_off >= 30  # waits for the price to clear its trend SMA
    assert close[first_on] > rolling_mean(close, 20)[first_on]


def _snapshot(close: np.ndarray) -> MarketSnapshot:
    sessions = [date(2024, 1, 1) + timedelta(days=k) for k in range(close.size)]
    bars = pl.DataFrame(
        {
            "session": sessions * 2,
            "symbol": ["A"] * close.size + ["B"] * close.size,
            "open": np.r_[close, close],
            "high": np.r_[close, close],
            "low": np.r_[close, close],
            "close": np.r_[close, close],
            "volume": 1.0,
        }
    )
    ts = datetime.combine(sessions[-1], datetime.min.time(), NEW_YORK)
    return MarketSnapshot(ts, sessions[-1], {"A": float(close[-1]), "B": float(close[-1])}, bars)


def test_decide_sizes_entries_and_closes_positions() -> None:
    close = np.array([10, 10, 10, 10, 12.0])  # entry on the last bar (fast 2 / slow 3)
    strategy = MACrossover(MACrossoverConfig(symbols=("A", "B"), fast=2, slow=3, allocation=0.5))
    intents = strategy.decide(_snapshot(close), Book.build(10_000.0))
    # each symbol gets 10,000 x 0.5 / 2 = 2,500 -> floor(2,500 / 12) = 208 shares
    assert [(i.legs[0].symbol, i.qty) for i in intents] == [("A", 208), ("B", 208)]
    leg = intents[0].legs[0]
    assert leg.side is Side.BUY and leg.asset_class is AssetClass.US_EQUITY
    assert intents[0].order_type is OrderType.MARKET and intents[0].strategy == "ma_crossover"
    held = Book.build(10_000.0, (Position("A", 5, 10.0, 12.0),))
    assert [i.legs[0].symbol for i in strategy.decide(_snapshot(close), held)] == ["B"]
    assert strategy.decide(_snapshot(close), Book.build(0.0)) == []  # no buying power
    falling = np.array([10, 10, 12, 14, 14, 10.0])
    sells = strategy.decide(_snapshot(falling), held)
    assert [(i.legs[0].symbol, i.legs[0].side, i.qty) for i in sells] == [("A", Side.SELL, 5)]
