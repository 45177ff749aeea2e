"""Trade/position statistics, drawdown duration, summary(), and the package's purity."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import strategies.analytics as sa

PACKAGE = Path(sa.__file__).parent


def test_win_rate_and_profit_factor_by_hand() -> None:
    pnl = [120.0, -40.0, 0.0, 60.0, -20.0, np.nan]  # NaN = open trade, ignored
    assert sa.win_rate(pnl) == pytest.approx(2 / 5)  # break-even is not a win
    assert sa.profit_factor(pnl) == pytest.approx(180 / 60)
    assert sa.profit_factor([10.0, 5.0]) == np.inf
    assert np.isnan(sa.profit_factor([0.0, 0.0]))
    assert np.isnan(sa.win_rate([])) and np.isnan(sa.profit_factor([]))


@pytest.mark.parametrize("frame", [pd.DataFrame, pl.DataFrame])
def test_trades_dataframe_with_pnl_column(frame) -> None:
    trades = frame({"symbol": ["A", "B", "C"], "pnl": [1.0, -2.0, 3.0]})
    assert sa.win_rate(trades) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="'pnl' column"):
        sa.win_rate(frame({"profit": [1.0]}))


def test_exposure_and_turnover_by_hand() -> None:
    weights = np.array([[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5], [np.nan, 0.0]])
    assert sa.exposure(weights) == pytest.approx(3 / 5)
    # |dw| per period from cash: 0, 0.5, 0.5, 0.5 + 0, 0.5 -> mean 0.4 a day -> 100.8 a year.
    assert sa.turnover(weights) == pytest.approx(0.4 * 252)
    assert sa.turnover(weights[:, 0], period="monthly") == pytest.approx((0.5 + 0.5) / 5 * 12)
    assert np.isnan(sa.exposure(np.array([]))) and np.isnan(sa.turnover([]))


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        ([0.01, 0.02, 0.03], 0),
        ([-0.01, 0.0, 0.0, 0.02], 3),  # recovers on the 4th period
        ([0.01, -0.02, 0.005, 0.02, -0.01, -0.01], 2),  # two 2-period spells
        ([0.05, -0.01, -0.01, -0.01], 3),  # never recovers: counts to the end
    ],
)
def test_max_drawdown_duration(returns: list[float], expected: int) -> None:
    assert sa.max_drawdown_duration(np.array(returns)) == expected


def test_max_drawdown_duration_matches_a_loop_reference() -> None:
    r = np.random.default_rng(8).normal(0.0003, 0.01, 2000)
    wealth, peak, run, longest = 1.0, 1.0, 0, 0
    for x in r:
        wealth *= 1 + x
        peak = max(peak, wealth)
        run = run + 1 if wealth < peak else 0
        longest = max(longest, run)
    assert sa.max_drawdown_duration(r) == longest


def test_summary_keys_and_consistency() -> None:
    r = pd.Series(np.random.default_rng(4).normal(0.0005, 0.01, 500))
    out = sa.summary(r, trades=[1.0, -0.5, 2.0], positions=np.ones(500))
    assert out["sharpe_ratio"] == sa.sharpe_ratio(r)
    assert out["max_drawdown"] == sa.max_drawdown(r)
    assert out["probabilistic_sharpe_ratio"] == sa.probabilistic_sharpe_ratio(r)
    assert out["n_trades"] == 3 and out["exposure"] == 1.0
    assert out["kurtosis"] == pytest.approx(3.0, abs=0.5)  # raw kurtosis of normal returns
    assert all(isinstance(v, float) for v in out.values())
    assert "win_rate" not in sa.summary(r)
    monthly = sa.summary(r, positions=np.ones(500), period="monthly")
    for name in ("annual_return", "annual_volatility", "sharpe_ratio", "sortino_ratio"):
        assert monthly[name] == getattr(sa, name)(r, period="monthly"), name
    assert monthly["calmar_ratio"] == sa.calmar_ratio(r, period="monthly")
    assert monthly["turnover"] == sa.turnover(np.ones(500), period="monthly")


ALLOWED_ROOTS = {"numpy", "scipy", "pandas", "polars", "numba", "strategies", "__future__"}


def test_package_imports_only_the_allowed_libraries() -> None:
    stdlib = set(sys.stdlib_module_names)
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= ALLOWED_ROOTS | stdlib, f"{path.name} imports {roots}"
            assert not roots & {"os", "io", "time", "datetime", "random", "pathlib", "socket"}
