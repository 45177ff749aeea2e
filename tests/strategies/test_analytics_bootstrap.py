"""Block-bootstrap confidence intervals: coverage of a known truth, determinism, index mechanics."""

from __future__ import annotations

import numpy as np
import pytest

import strategies.analytics as sa

MU, SIGMA = 0.0008, 0.01
TRUE_SHARPE = MU / SIGMA * np.sqrt(252)  # 1.27 annualized for i.i.d. normal daily returns


def test_interval_covers_true_sharpe_of_a_known_distribution() -> None:
    r = np.random.default_rng(123).normal(MU, SIGMA, 1000)
    ci = sa.bootstrap_ci(r, sa.sharpe_ratio, n_boot=1000, seed=7)
    assert ci.lower < ci.estimate < ci.upper
    assert ci.contains(TRUE_SHARPE)
    # Width is about 2 * 1.96 * sqrt((1 + SR_d**2 / 2) / n) * sqrt(252) ~ 1.97 for n = 1000.
    assert ci.upper - ci.lower == pytest.approx(1.97, rel=0.2)


@pytest.mark.parametrize("method", ["stationary", "circular"])
def test_coverage_over_many_samples_is_near_nominal(method: str) -> None:
    covered = []
    for seed in range(40):
        r = np.random.default_rng(10_000 + seed).normal(MU, SIGMA, 400)
        ci = sa.bootstrap_ci(r, sa.sharpe_ratio, n_boot=300, alpha=0.1, seed=seed, method=method)
        covered.append(ci.contains(TRUE_SHARPE))
    # Nominal 90 %; 40 draws -> binomial sd ~ 4.7 pp. A broken interval (e.g. far too narrow)
    # would land well below 75 %.
    assert np.mean(covered) >= 0.75


def test_same_seed_same_interval_different_seed_different_interval() -> None:
    r = np.random.default_rng(3).normal(MU, SIGMA, 500)
    a = sa.bootstrap_ci(r, sa.max_drawdown, n_boot=200, seed=42)
    b = sa.bootstrap_ci(r, sa.max_drawdown, n_boot=200, seed=42)
    c = sa.bootstrap_ci(r, sa.max_drawdown, n_boot=200, seed=43)
    assert a == b
    assert (a.lower, a.upper) != (c.lower, c.upper)


def test_seed_is_mandatory() -> None:
    with pytest.raises(TypeError):
        sa.bootstrap_ci(np.zeros(10), sa.sharpe_ratio)  # type: ignore[call-arg]


@pytest.mark.parametrize("method", ["stationary", "circular"])
def test_indices_are_blocks_of_consecutive_positions(method: str) -> None:
    idx = sa.block_bootstrap_indices(100, 50, 10, seed=1, method=method)
    assert idx.shape == (50, 100)
    assert idx.min() >= 0 and idx.max() < 100
    steps = (np.diff(idx, axis=1) % 100) == 1  # wrap-around counts as consecutive
    # Mean block length 10 -> about 90 % of steps continue a block.
    assert steps.mean() == pytest.approx(0.9, abs=0.03)
    # Every position is about equally likely (circular wrap removes end effects).
    counts = np.bincount(idx.ravel(), minlength=100)
    assert counts.min() > 0.6 * counts.mean()


def test_circular_blocks_have_exact_length() -> None:
    idx = sa.block_bootstrap_indices(30, 5, 5, seed=0, method="circular")
    for row in idx:
        for block in row.reshape(6, 5):
            assert np.array_equal((block - block[0]) % 30, np.arange(5))


def test_nans_dropped_and_degenerate_inputs() -> None:
    r = np.random.default_rng(0).normal(MU, SIGMA, 300)
    with_nan = np.insert(r, [5, 50], np.nan)
    assert sa.bootstrap_ci(with_nan, sa.sharpe_ratio, 100, seed=1) == sa.bootstrap_ci(
        r, sa.sharpe_ratio, 100, seed=1
    )
    tiny = sa.bootstrap_ci(np.array([0.01]), sa.sharpe_ratio, 100, seed=1)
    assert np.isnan(tiny.lower) and np.isnan(tiny.upper)
    with pytest.raises(ValueError, match="alpha"):
        sa.bootstrap_ci(r, sa.sharpe_ratio, alpha=1.5, seed=1)
    with pytest.raises(ValueError, match="method"):
        sa.bootstrap_ci(r, sa.sharpe_ratio, seed=1, method="iid")  # type: ignore[arg-type]
