"""research.portfolio against independent references: closed forms on returns built to have an
exact sample covariance, scikit-learn's Ledoit-Wolf, and skfolio's own risk-parity example."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.covariance import ledoit_wolf

from research.portfolio import Constraints, Method, allocate, correlation_report, cov_to_corr

NAMES = ["a", "b", "c", "d"]


def exact_returns(cov: np.ndarray, n: int = 500, seed: int = 1) -> pd.DataFrame:
    """Returns whose sample covariance (ddof=1) is ``cov`` to rounding: whitened noise times
    the Cholesky factor of ``cov``, plus a small mean."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, cov.shape[0]))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample cov = I
    x = z @ np.linalg.cholesky(cov).T + 0.0004
    assert np.allclose(np.cov(x, rowvar=False), cov, atol=1e-15, rtol=1e-10)
    return pd.DataFrame(x, columns=[f"s{i}" for i in range(cov.shape[0])])


def cov_of(vols: list[float], corr: np.ndarray) -> np.ndarray:
    v = np.asarray(vols)
    return corr * np.outer(v, v)


def risk_contributions(w: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Each weight's share of portfolio variance, w_i (S w)_i / w'S w."""
    return w * (cov @ w) / (w @ cov @ w)


def weights(alloc) -> np.ndarray:
    return np.array(list(alloc.weights.values()))


def test_min_variance_matches_the_closed_form() -> None:
    """Unconstrained minimum variance is S^-1 1 / 1'S^-1 1 (all positive here, so long-only
    bounds do not bind); the solver agrees within 1e-6."""
    corr = np.array([[1, 0.3, 0.2, 0.1], [0.3, 1, 0.25, 0.15], [0.2, 0.25, 1, 0.2],
                     [0.1, 0.15, 0.2, 1]])  # fmt: skip
    cov = cov_of([0.010, 0.014, 0.018, 0.022], corr)
    inv = np.linalg.solve(cov, np.ones(4))
    expected = inv / inv.sum()
    assert (expected > 0).all()
    got = weights(allocate(exact_returns(cov), Method.MIN_VARIANCE))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_risk_parity_two_assets_is_inverse_volatility() -> None:
    """With two assets equal risk contributions mean w_i ∝ 1/sigma_i, whatever the
    correlation (the textbook closed form); within 1e-5, contributions equal within 1e-5."""
    for rho in (-0.4, 0.0, 0.6):
        cov = cov_of([0.01, 0.03], np.array([[1, rho], [rho, 1]]))
        got = weights(allocate(exact_returns(cov), Method.RISK_PARITY))
        np.testing.assert_allclose(got, [0.75, 0.25], atol=1e-5)
        np.testing.assert_allclose(risk_contributions(got, cov), [0.5, 0.5], atol=1e-5)


def test_risk_parity_block_diagonal_equalizes_contributions() -> None:
    """Two uncorrelated blocks of two: every strategy carries 1/4 of the variance (1e-5)."""
    block = np.array([[1, 0.5], [0.5, 1]])
    corr = np.block([[block, np.zeros((2, 2))], [np.zeros((2, 2)), block]])
    cov = cov_of([0.01, 0.02, 0.015, 0.03], corr)
    got = weights(allocate(exact_returns(cov), Method.RISK_PARITY))
    np.testing.assert_allclose(risk_contributions(got, cov), np.full(4, 0.25), atol=1e-5)


def test_risk_parity_on_skfolios_documented_example() -> None:
    """skfolio's "Risk Parity - Variance" example (S&P 500 dataset shipped with skfolio, 2/3
    train split): the fitted portfolio's 20 risk contributions are equal, within 1e-4 of 1/20."""
    from skfolio.datasets import load_sp500_dataset
    from skfolio.preprocessing import prices_to_returns

    x = prices_to_returns(load_sp500_dataset())
    train = x.iloc[: int(len(x) * 0.67)]
    got = weights(allocate(train, Method.RISK_PARITY))
    cov = np.cov(train.to_numpy(), rowvar=False)
    np.testing.assert_allclose(risk_contributions(got, cov), np.full(20, 0.05), atol=1e-4)


def test_hrp_on_uncorrelated_assets_is_inverse_variance() -> None:
    """With a diagonal covariance every bisection splits by inverse cluster variance, so HRP
    gives w ∝ 1/sigma^2 (López de Prado 2016, the IVP special case); within 1e-9."""
    vols = np.array([0.01, 0.02, 0.015, 0.03])
    got = weights(allocate(exact_returns(np.diag(vols**2)), Method.HRP))
    expected = (1 / vols**2) / (1 / vols**2).sum()
    np.testing.assert_allclose(got, expected, atol=1e-9)


BUCKET = "S&P 500 (index)"  # any name: skfolio's constraint parser never sees it
BOUNDED = Constraints(
    min_weight=0.1,
    max_weight=0.45,
    buckets={"s0": BUCKET, "s1": BUCKET, "s2": "energy"},
    bucket_caps={BUCKET: 0.3},
)


@pytest.mark.parametrize("method", list(Method))
def test_weights_sum_to_one_within_bounds(method: Method) -> None:
    """Every method: weights sum to 1 and stay in [min, max] (1e-6); the optimizers with group
    support enforce the bucket cap, HRP and equal weight report it as not enforced."""
    corr = np.full((4, 4), 0.2) + 0.8 * np.eye(4)
    x = exact_returns(cov_of([0.005, 0.006, 0.03, 0.04], corr))  # s0, s1 want most weight
    alloc = allocate(x, method, BOUNDED)
    w = weights(alloc)
    assert abs(w.sum() - 1.0) <= 1e-6
    assert w.min() >= 0.1 - 1e-6 and w.max() <= 0.45 + 1e-6
    bucket = next(c for c in alloc.report if c.constraint == f"bucket:{BUCKET}")
    assert bucket.value == pytest.approx(w[0] + w[1], abs=1e-12)
    if method in (Method.RISK_PARITY, Method.MIN_VARIANCE):
        assert bucket.enforced and bucket.satisfied and bucket.value <= 0.3 + 1e-6
        unconstrained = allocate(x, method, Constraints(min_weight=0.1, max_weight=0.45))
        assert unconstrained.weights["s0"] + unconstrained.weights["s1"] > 0.3 + 1e-3  # it binds
    else:
        assert not bucket.enforced
        assert bucket.satisfied == (bucket.value <= 0.3 + 1e-6)
    assert alloc.ok == all(c.satisfied for c in alloc.report)


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        (Constraints(min_weight=0.3), "cannot sum to 1 over 4"),
        (Constraints(max_weight=0.2), "cannot sum to 1 over 4"),
        (Constraints(buckets={"zz": "X"}), "unknown strategies"),
        (Constraints(buckets={"s0": "X"}, bucket_caps={"Y": 0.5}), "no strategy is in"),
        (Constraints(min_weight=0.2, buckets={"s0": "X", "s1": "X"}, bucket_caps={"X": 0.3}),
         "below its 2 strategies"),
        (Constraints(max_weight=0.3, buckets={"s0": "X", "s1": "X", "s2": "X"},
                     bucket_caps={"X": 0.2}), "raise a cap"),
    ],
)  # fmt: skip
def test_infeasible_constraints_name_the_problem(constraints: Constraints, message: str) -> None:
    x = exact_returns(np.eye(4) * 1e-4)
    with pytest.raises(ValueError, match=message):
        allocate(x, Method.RISK_PARITY, constraints)


def test_bad_returns_and_method_are_refused() -> None:
    x = exact_returns(np.eye(3) * 1e-4)
    with pytest.raises(ValueError, match="unknown allocation method 'kelly'"):
        allocate(x, "kelly")
    gap = x.copy()
    gap.iloc[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        allocate(gap, Method.HRP)
    with pytest.raises(ValueError, match="at least 2"):
        allocate(x[["s0"]], Method.HRP)
    with pytest.raises(ValueError, match="constant returns"):
        allocate(x.assign(s1=0.001), Method.HRP)


def test_correlations_against_pandas_and_sklearn() -> None:
    """Pearson equals pandas' corr (1e-12); the shrunk matrix is the correlation of
    scikit-learn's ledoit_wolf covariance (1e-10) and shrinks every off-diagonal entry toward 0;
    three interleaved blocks of three (rho 0.8 within, 0 across) come back as three clusters,
    each contiguous in the leaf order."""
    corr = np.kron(np.eye(3), np.full((3, 3), 0.8) + 0.2 * np.eye(3))
    x = exact_returns(cov_of([0.01, 0.02, 0.015, 0.03, 0.01, 0.02, 0.012, 0.02, 0.02], corr))
    x = x[[f"s{i}" for i in (0, 3, 6, 1, 4, 7, 2, 5, 8)]]  # interleave the blocks
    rep = correlation_report(x)
    np.testing.assert_allclose(rep.pearson, x.corr().to_numpy(), atol=1e-12)
    shrunk_cov, shrinkage = ledoit_wolf(x.to_numpy())
    np.testing.assert_allclose(rep.shrunk, cov_to_corr(shrunk_cov), atol=1e-10)
    assert rep.shrinkage == pytest.approx(shrinkage, abs=1e-12)
    assert 0 < rep.shrinkage < 1
    off = ~np.eye(9, dtype=bool)
    assert np.all(np.abs(rep.shrunk[off]) <= np.abs(rep.pearson[off]) + 1e-12)
    cl = dict(zip(rep.assets, rep.clusters, strict=True))
    blocks = [{"s0", "s1", "s2"}, {"s3", "s4", "s5"}, {"s6", "s7", "s8"}]
    assert [len({cl[s] for s in b}) for b in blocks] == [1, 1, 1]
    assert len(set(rep.clusters)) == 3
    names = [rep.assets[i] for i in rep.order]
    for b in blocks:
        pos = sorted(names.index(s) for s in b)
        assert pos[-1] - pos[0] == 2  # contiguous
    assert rep.table()["strategy"].to_list() == names
    assert rep.pairs().height == 36
    assert rep.pairs().filter(pl.col("same_cluster")).height == 9
