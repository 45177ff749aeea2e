"""The sweep's compiled value path is vectorbt's ``value()`` and ``asset_value() > 0`` exactly."""

from __future__ import annotations

import numpy as np
import pytest
import vectorbt as vbt

from alpaca_improved_pipelines.backtesting.values import value_paths


def _portfolio(seed: int, fees: float, slippage: float, init_cash: float) -> tuple:
    rng = np.random.default_rng(seed)
    bars, cols = 600, 24
    scale = rng.uniform(0.01, 900.0, cols)  # penny stocks to index levels
    close = np.exp(np.cumsum(rng.normal(0.0, 0.03, (bars, cols)), axis=0)) * scale
    entries = rng.random((bars, cols)) < 0.06
    exits = rng.random((bars, cols)) < 0.06
    entries[:, 0] = exits[:, 0] = False  # a column that never trades
    entries[5, 1] = exits[5, 1] = True  # an entry and an exit on the same bar cancel
    pf = vbt.Portfolio.from_signals(
        close, entries, exits, fees=fees, slippage=slippage, freq="1D", init_cash=init_cash
    )
    return pf, close


@pytest.mark.parametrize(
    ("seed", "fees", "slippage", "init_cash"),
    [
        (0, 0.0, 0.0, 100.0),
        (1, 0.001, 0.0005, 20_000.0),
        (2, 0.02, 0.01, 1e-5),  # positions near vectorbt's 1e-8 minimum size and its tolerances
        (3, 0.001, 0.0, 1e9),
    ],
)
def test_value_paths_equal_vectorbt_bit_for_bit(
    seed: int, fees: float, slippage: float, init_cash: float
) -> None:
    pf, close = _portfolio(seed, fees, slippage, init_cash)
    assert len(pf.order_records) > 30
    asset_value = np.asarray(pf.asset_value())
    value, invested = value_paths(pf, close, init_cash)
    np.testing.assert_array_equal(value, np.asarray(pf.value()))
    np.testing.assert_array_equal(value, np.asarray(pf.cash()) + asset_value)
    np.testing.assert_array_equal(invested, asset_value > 0)
    assert not invested[:, 0].any() and (value[:, 0] == init_cash).all()


def test_a_position_at_a_nan_close_is_left_to_vectorbt() -> None:
    close = np.array([[10.0], [11.0], [np.nan], [12.0], [13.0]])
    entries = np.array([[True], [False], [False], [False], [False]])
    exits = np.array([[False], [False], [False], [False], [True]])
    pf = vbt.Portfolio.from_signals(close, entries, exits, freq="1D", init_cash=100.0)
    value, invested = value_paths(pf, close, 100.0)
    np.testing.assert_array_equal(value, np.asarray(pf.value()))  # the NaN bar forward-filled
    assert np.isfinite(value).all() and invested[:4, 0].all()
