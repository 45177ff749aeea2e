"""The allocation walk-forward: held weights give the stitched returns, no fold sees its future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.portfolio import Constraints, Method, walk_forward_allocation
from strategies import analytics


def returns(n: int = 200, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0004, 1.0, (n, 4)) * [0.01, 0.02, 0.015, 0.03]
    x[:, 1] += 0.5 * x[:, 0]  # some correlation
    idx = pd.bdate_range("2024-01-02", periods=n).date
    return pd.DataFrame(x, columns=["a", "b", "c", "d"], index=idx)


@pytest.mark.parametrize("method", [Method.RISK_PARITY, Method.HRP])
def test_stitched_returns_are_the_held_weights(method: Method) -> None:
    """Each test window's returns are its rows times the weights fitted before it (1e-15), and
    equal weight is the row mean; 4 folds of 20 after 120 training sessions."""
    x = returns()
    bt = walk_forward_allocation(x, method, Constraints(max_weight=0.6), train=120, test=20)
    assert len(bt.folds) == 4 and len(bt.sessions) == 80 == len(bt.returns)
    assert bt.sessions == tuple(x.index[120:200])
    for k, (alloc, start) in enumerate(zip(bt.folds, bt.fold_starts, strict=True)):
        rows = x.to_numpy()[120 + 20 * k : 140 + 20 * k]
        w = np.array([alloc.weights[c] for c in x.columns])
        np.testing.assert_allclose(bt.returns[start : start + 20], rows @ w, atol=1e-15)
        np.testing.assert_allclose(bt.equal_weight[start : start + 20], rows.mean(1), atol=1e-15)
        assert alloc.ok and max(alloc.weights.values()) <= 0.6 + 1e-6
    m = bt.metrics()
    assert m["sharpe_ratio"] == pytest.approx(analytics.sharpe_ratio(bt.returns), abs=1e-12)
    assert m["ew_max_drawdown"] == pytest.approx(analytics.max_drawdown(bt.equal_weight), abs=1e-12)
    curve = bt.equity(100.0)
    assert curve["equity"][-1] == pytest.approx(100 * np.prod(1 + bt.returns), rel=1e-12)
    assert bt.weights().height == 16


def test_no_fold_sees_its_future() -> None:
    """Rewriting every session after fold 0's training window leaves fold 0's weights exactly
    as they were (and changes later folds)."""
    x = returns()
    base = walk_forward_allocation(x, Method.MIN_VARIANCE, train=120, test=20)
    y = x.copy()
    y.iloc[120:] = y.iloc[120:].to_numpy()[::-1] * 3.0
    moved = walk_forward_allocation(y, Method.MIN_VARIANCE, train=120, test=20)
    assert moved.folds[0].weights == base.folds[0].weights
    assert moved.folds[1].weights != base.folds[1].weights


def test_too_few_sessions_is_refused() -> None:
    with pytest.raises(ValueError, match="fewer than train 150 \\+ test 60"):
        walk_forward_allocation(returns(), Method.HRP, train=150, test=60)
