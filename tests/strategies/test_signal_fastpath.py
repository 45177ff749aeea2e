"""The compiled sweep kernels reproduce vectorbt's Portfolio.from_signals (the reference)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

from strategies.backtest.signal_fastpath import (
    ma_crossover_sweep,
    ma_pairs,
    momentum_sweep,
    rsi_reversion_sweep,
    simulate_signals,
)
from strategies.equity import (
    MACrossover,
    MACrossoverConfig,
    Momentum,
    MomentumConfig,
    RSIReversion,
    RSIReversionConfig,
)

FEES = 0.001


@pytest.fixture(scope="module")
def close() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    returns = rng.standard_t(4, (756, 3)) * 0.012 + 0.0003
    index = pd.date_range("2021-01-04", periods=756, freq="B")
    return pd.DataFrame(
        100 * np.exp(np.cumsum(returns, axis=0)), index=index, columns=["AAA", "BBB", "CCC"]
    )


def reference(close: pd.DataFrame, signal_sets: list[tuple], **kwargs) -> tuple[np.ndarray, ...]:
    """vectorbt on the strategies' own signals, one column per (combo, symbol)."""
    entries = np.concatenate([np.asarray(e) for e, _ in signal_sets], axis=1)
    exits = np.concatenate([np.asarray(x) for _, x in signal_sets], axis=1)
    tiled = np.tile(close.to_numpy(), (1, len(signal_sets)))
    frame = lambda a: pd.DataFrame(a, index=close.index)  # noqa: E731
    pf = vbt.Portfolio.from_signals(
        frame(tiled),
        frame(entries),
        frame(exits),
        freq="1D",
        init_cash=kwargs.pop("init_cash", 100.0),
        **kwargs,
    )
    return pf.total_return().to_numpy(), pf.trades.count().to_numpy()


@pytest.mark.parametrize("slippage", [0.0, 0.0005])
def test_ma_crossover_grid_matches_vectorbt(close: pd.DataFrame, slippage: float) -> None:
    pairs = ma_pairs(range(2, 22), range(22, 62, 2))  # 20 fast x 20 slow
    assert len(pairs) == 400
    fast = ma_crossover_sweep(close, pairs, fees=FEES, slippage=slippage, init_cash=10_000.0)
    sets = [MACrossover(MACrossoverConfig(fast=f, slow=s)).signals(close) for f, s in pairs]
    ret, trades = reference(close, sets, fees=FEES, slippage=slippage, init_cash=10_000.0)
    assert fast.height == 1_200 and fast.get_column("symbol").to_list()[:3] == ["AAA", "BBB", "CCC"]
    np.testing.assert_allclose(fast.get_column("total_return").to_numpy(), ret, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(fast.get_column("trades").to_numpy(), trades)
    assert trades.sum() > 1_000 and np.ptp(ret) > 0.1  # a grid with real variety


def test_rsi_sweep_matches_vectorbt(close: pd.DataFrame) -> None:
    combos = [(w, lo, hi) for w in (5, 14) for lo in (25.0, 35.0) for hi in (55.0, 70.0)]
    fast = rsi_reversion_sweep(close, combos, fees=FEES)
    sets = [
        RSIReversion(RSIReversionConfig(window=w, lower=lo, upper=hi)).signals(close)
        for w, lo, hi in combos
    ]
    ret, trades = reference(close, sets, fees=FEES)
    np.testing.assert_allclose(fast.get_column("total_return").to_numpy(), ret, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(fast.get_column("trades").to_numpy(), trades)


def test_momentum_sweep_matches_vectorbt(close: pd.DataFrame) -> None:
    """The fused kernel over momentum's whole declared grid (trend 0 included) against vectorbt
    on the strategy's own signals, and the family's sweep_fast_path in (point, symbol) shape
    (the intraday-gated points need the sessions' minute features: tests/strategies/
    test_intraday_gate.py)."""
    points = [p for p in Momentum.param_space().grid() if p["intraday_gate"] == "off"]
    combos = [(p["lookback"], p["enter"], p["leave"], p["trend"]) for p in points]
    fast = momentum_sweep(close, combos, fees=FEES, slippage=0.0005)
    sets = [Momentum(MomentumConfig(**p)).signals(close) for p in points]
    ret, trades = reference(close, sets, fees=FEES, slippage=0.0005)
    np.testing.assert_allclose(fast.get_column("total_return").to_numpy(), ret, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(fast.get_column("trades").to_numpy(), trades)
    assert trades.sum() > 1_000 and np.ptp(ret) > 0.1
    by_point, counts = Momentum.sweep_fast_path(
        close.to_numpy(), points, fees=FEES, slippage=0.0005, init_cash=100.0
    )
    assert by_point.shape == counts.shape == (len(points), 3)
    np.testing.assert_array_equal(by_point.ravel(), fast.get_column("total_return").to_numpy())
    np.testing.assert_array_equal(counts.ravel(), trades)


def test_any_signals_including_conflicts_match_vectorbt(close: pd.DataFrame) -> None:
    rng = np.random.default_rng(9)
    entries = rng.random((756, 3)) < 0.08  # random, overlapping, same-bar conflicts included
    exits = rng.random((756, 3)) < 0.08
    assert (entries & exits).any()
    ret, trades = simulate_signals(close, entries, exits, fees=FEES, slippage=0.001)
    ref_ret, ref_trades = reference(close, [(entries, exits)], fees=FEES, slippage=0.001)
    np.testing.assert_allclose(ret, ref_ret, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(trades, ref_trades)
    e, x = Momentum(MomentumConfig(lookback=20, enter=0.02, leave=-0.02, trend=50)).signals(close)
    ret, trades = simulate_signals(close, e, x, fees=FEES)
    ref_ret, ref_trades = reference(close, [(e, x)], fees=FEES)
    np.testing.assert_allclose(ret, ref_ret, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(trades, ref_trades)


def test_bad_inputs() -> None:
    good = np.linspace(10, 20, 50)
    with pytest.raises(ValueError, match="fast < slow"):
        ma_crossover_sweep(good, [(20, 10)])
    with pytest.raises(ValueError, match="finite and > 0"):
        ma_crossover_sweep(np.r_[good, np.nan], [(2, 5)])
    with pytest.raises(ValueError, match="fees"):
        ma_crossover_sweep(good, [(2, 5)], fees=-0.1)
    with pytest.raises(ValueError, match="shape"):
        simulate_signals(good, np.zeros(10, bool), np.zeros(10, bool))
    with pytest.raises(ValueError, match="combos"):
        rsi_reversion_sweep(good, [(14, 70.0, 30.0)])
    with pytest.raises(ValueError, match="combos"):
        momentum_sweep(good, [(5, 0.0, 0.0, 0)])  # leave must be < enter
