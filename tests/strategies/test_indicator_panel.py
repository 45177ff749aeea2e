"""Panel indicators (strategies.indicators.panel) against TA-Lib column by column, the families'
panel signals against their own per-column signals, and add_indicators' frame<->panel layout."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import polars as pl
import pytest
import talib

from strategies.equity import (
    MACrossover,
    MACrossoverConfig,
    Momentum,
    MomentumConfig,
    RSIReversion,
    RSIReversionConfig,
)
from strategies.equity._kernels import rate_of_change, rolling_mean, rsi_wilder
from strategies.equity.signal import SignalStrategy
from strategies.indicators import IndicatorConfig, add_indicators, indicator_exprs, panel

# Absolute tolerance against TA-Lib: prices here run ~5-2,000, so 1e-9 is ~1e-12 relative.
# (Both sides use running sums; Bollinger's std is where they differ most, ~1e-10 here.)
TOL = 1e-9


@pytest.fixture(scope="module")
def hlc() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (400, 7) random-walk panel with a flat column and a flat start in another."""
    rng = np.random.default_rng(11)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (400, 7)), axis=0))
    close[:, 0] = 50.0  # flat: RSI 0, bands collapse
    close[:60, 1] = close[60, 1]  # flat start
    spread = np.abs(rng.normal(0, 0.01, close.shape))
    return close * (1 + spread), close * (1 - spread), close


def like_talib(ours: np.ndarray, ref: np.ndarray, name: str) -> None:
    """NaN exactly where TA-Lib's is, equal to TOL elsewhere."""
    warm = np.isnan(ref)
    assert (~warm).any(), f"{name}: vacuous comparison"
    np.testing.assert_array_equal(np.isnan(ours), warm, err_msg=f"{name} warm-up")
    np.testing.assert_allclose(ours[~warm], ref[~warm], rtol=0, atol=TOL, err_msg=name)


def per_column(hlc: tuple, ours: np.ndarray, ref_fn, name: str) -> None:  # noqa: ANN001
    high, low, close = hlc
    for j in range(close.shape[1]):
        cols = (np.ascontiguousarray(a[:, j]) for a in (high, low, close))
        like_talib(ours[:, j], ref_fn(*cols), f"{name}[{j}]")


@pytest.mark.parametrize("n", [1, 2, 14, 50])
def test_moving_averages_rsi_roc_match_talib(hlc: tuple, n: int) -> None:
    close = hlc[2]
    per_column(hlc, panel.sma(close, n), lambda h, lo, c: talib.SMA(c, n), "sma")
    per_column(hlc, panel.ema(close, n), lambda h, lo, c: talib.EMA(c, n), "ema")
    if n > 1:  # TA-Lib's RSI refuses n = 1
        per_column(hlc, panel.rsi(close, n), lambda h, lo, c: talib.RSI(c, n), "rsi")
    roc = panel.rate_of_change(close, n)
    per_column(hlc, roc, lambda h, lo, c: talib.ROCR(c, n) - 1.0, "roc")


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (3, 10, 1), (5, 6, 4)])
def test_macd_matches_talib(hlc: tuple, fast: int, slow: int, signal: int) -> None:
    lines = panel.macd(hlc[2], fast, slow, signal)
    for k, name in enumerate(("macd", "signal", "hist")):
        ref = lambda h, lo, c, k=k: talib.MACD(c, fast, slow, signal)[k]  # noqa: E731
        per_column(hlc, lines[k], ref, name)


@pytest.mark.parametrize(("n", "k"), [(20, 2.0), (5, 1.5), (2, 3.0)])
def test_bollinger_matches_talib(hlc: tuple, n: int, k: float) -> None:
    bands = panel.bollinger(hlc[2], n, k)
    for b, name in enumerate(("upper", "middle", "lower")):
        ref = lambda h, lo, c, b=b: talib.BBANDS(c, n, k, k, talib.MA_Type.SMA)[b]  # noqa: E731
        per_column(hlc, bands[b], ref, name)
    # The flat column collapses exactly (TA-Lib's zero-variance rule), as TA-Lib.
    assert (bands[0][n - 1 :, 0] == 50.0).all()
    np.testing.assert_array_equal(bands[1], panel.sma(hlc[2], n))  # middle is the SMA


@pytest.mark.parametrize("n", [1, 14, 30])
def test_atr_and_true_range_match_talib(hlc: tuple, n: int) -> None:
    high, low, close = hlc
    per_column(hlc, panel.atr(high, low, close, n), lambda h, lo, c: talib.ATR(h, lo, c, n), "atr")
    per_column(
        hlc, panel.true_range(high, low, close), lambda h, lo, c: talib.TRANGE(h, lo, c), "tr"
    )


@pytest.mark.parametrize("n", [2, 20])
def test_realized_vol_matches_pandas_and_talib_stddev(hlc: tuple, n: int) -> None:
    close = hlc[2]
    ours = panel.realized_vol(close, n, 252)
    ref = np.log(pd.DataFrame(close)).diff().rolling(n).std(ddof=1).to_numpy() * math.sqrt(252)
    like_talib(ours, ref, "rv vs pandas")
    stddev = lambda h, lo, c: np.r_[  # noqa: E731
        np.nan, talib.STDDEV(np.diff(np.log(c)), n, 1.0) * math.sqrt(252 * n / (n - 1))
    ]
    per_column(hlc, ours, stddev, "rv vs talib.STDDEV")


def test_bollinger_std_stays_exact_on_a_long_high_priced_series() -> None:
    """M2 is recomputed every window, so 100k bars at ~2,000 with a small spread stay as close
    to the two-pass std as TA-Lib is (a never-reset update drifted to ~1e-8 here)."""
    rng = np.random.default_rng(5)
    x = 2000 * np.exp(np.cumsum(rng.normal(0, 0.0005, 100_000)))
    upper, middle, _ = panel.bollinger(x, 20, 1.0)
    exact = np.lib.stride_tricks.sliding_window_view(x, 20).std(axis=1)
    talib_err = np.abs(
        np.subtract(*talib.BBANDS(x, 20, 1, 1, talib.MA_Type.SMA)[:2])[19:] - exact
    ).max()
    ours_err = np.abs((upper - middle)[19:] - exact).max()
    assert ours_err <= max(2 * talib_err, 1e-10), (ours_err, talib_err)


def test_threads_and_blocks_do_not_change_values(hlc: tuple) -> None:
    close = hlc[2]
    for fn in (panel.sma, panel.ema, panel.rsi, panel.rate_of_change):
        one = fn(close, 9, threads=1)
        np.testing.assert_array_equal(fn(close, 9, threads=3), one)
        # A column alone equals its column of the panel, bit for bit.
        np.testing.assert_array_equal(fn(close[:, 4], 9), one[:, 4])
    np.testing.assert_array_equal(panel.macd(close, threads=2)[2], panel.macd(close)[2])
    bands, one_thread = panel.bollinger(close, threads=None), panel.bollinger(close)
    for a, b in zip(bands, one_thread, strict=True):
        np.testing.assert_array_equal(a, b)


def test_one_column_kernels_are_the_panel_kernels(hlc: tuple) -> None:
    close = hlc[2]
    for j in range(close.shape[1]):
        c = np.ascontiguousarray(close[:, j])
        np.testing.assert_array_equal(rolling_mean(c, 20), panel.sma(close, 20)[:, j])
        np.testing.assert_array_equal(rsi_wilder(c, 14), panel.rsi(close, 14)[:, j])
        np.testing.assert_array_equal(rate_of_change(c, 5), panel.rate_of_change(close, 5)[:, j])


@pytest.mark.parametrize(
    "strategy",
    [
        MACrossover(MACrossoverConfig(fast=5, slow=20)),
        MACrossover(MACrossoverConfig(fast=1, slow=2)),
        RSIReversion(RSIReversionConfig(window=7, lower=35, upper=65)),
        Momentum(MomentumConfig(lookback=10, enter=0.01, leave=-0.01, trend=50)),
        Momentum(MomentumConfig(lookback=3, enter=0.0, leave=-0.02, trend=0)),
    ],
    ids=lambda s: s.name,
)
def test_panel_signals_equal_the_column_signals(hlc: tuple, strategy: SignalStrategy) -> None:
    close = np.ascontiguousarray(hlc[2])
    entries, exits = strategy.panel_signals(close)
    ref_entries, ref_exits = SignalStrategy.panel_signals(strategy, close)  # per column
    assert ref_entries.any() and ref_exits.any(), "vacuous comparison"
    np.testing.assert_array_equal(entries, ref_entries)
    np.testing.assert_array_equal(exits, ref_exits)


def test_add_indicators_on_ragged_shuffled_symbols_equals_the_polars_expressions() -> None:
    """Symbols of different lengths, rows in random order: each symbol's rows become a panel
    column in their own order; the values equal the per-symbol polars expressions."""
    rng = np.random.default_rng(3)
    frames = []
    for k, n in enumerate((300, 300, 120, 40, 7, 300)):
        close = 20 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        frames.append(
            pl.DataFrame(
                {"symbol": f"S{k}", "ts": np.arange(n, dtype=np.int64), "close": close}
                | {"high": close * 1.01, "low": close * 0.99}
            )
        )
    bars = pl.concat(frames)
    bars = bars[rng.permutation(bars.height)].sort("ts", maintain_order=True)
    config = IndicatorConfig(sma_windows=(3, 50), rsi_windows=(2, 14), rv_windows=(5,))
    ours = add_indicators(bars, config)
    assert add_indicators(bars, config, threads=2).equals(ours)
    ref = bars.lazy().with_columns(indicator_exprs(config)).collect()
    assert ours.select(bars.columns).equals(bars)
    for name in config.columns():
        a, b = ours[name], ref[name]
        assert a.null_count() > 0 and (a.is_null() == b.is_null()).all(), name
        np.testing.assert_allclose(a.drop_nulls(), b.drop_nulls(), rtol=1e-12, atol=1e-12)


def test_bad_panels_raise_one_clear_line() -> None:
    with pytest.raises(ValueError, match="close must be 1-D or 2-D"):
        panel.sma(np.ones((3, 3, 3)), 2)
    with pytest.raises(ValueError, match="one shape"):
        panel.atr(np.ones((5, 2)), np.ones((5, 3)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        panel.rsi(np.ones(5), 0)
    with pytest.raises(ValueError, match="fast must be < slow"):
        panel.macd(np.ones(50), 26, 12)


@pytest.mark.parametrize("bars", [0, 1, 5, 30])
def test_short_histories_are_nan_where_talib_is(bars: int) -> None:
    x = np.linspace(10.0, 12.0, bars)
    pairs: list[tuple[np.ndarray, Callable[..., np.ndarray], tuple[int, ...]]] = [
        (panel.sma(x, 20), talib.SMA, (20,)),
        (panel.ema(x, 20), talib.EMA, (20,)),
        (panel.rsi(x, 14), talib.RSI, (14,)),
        (panel.macd(x)[1], lambda c: talib.MACD(c)[1], ()),
        (panel.bollinger(x)[2], lambda c: talib.BBANDS(c, 20, 2.0, 2.0)[2], ()),
        (panel.rate_of_change(x, 10), talib.ROCR, (10,)),
        (panel.atr(x, x, x, 14), lambda c, n: talib.ATR(c, c, c, n), (14,)),
    ]
    for ours, ref, args in pairs:
        assert ours.shape == (bars,)
        if bars:  # TA-Lib refuses empty input
            np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref(x, *args)))
    assert np.isnan(panel.realized_vol(x, 20)).sum() == min(bars, 20)


def test_add_indicators_on_an_empty_frame_adds_empty_columns() -> None:
    schema = {"symbol": pl.String, "ts": pl.Int64} | dict.fromkeys(
        ("high", "low", "close"), pl.Float64
    )
    out = add_indicators(pl.DataFrame(schema=schema))
    assert out.height == 0 and out.columns[-1] == "rv_20" and out.schema["rsi_14"] == pl.Float64
