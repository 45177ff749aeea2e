"""Correlation of strategies' daily returns: Pearson, a Ledoit-Wolf shrinkage estimate, and a
hierarchical clustering order.

Sample correlations of a few hundred sessions across a dozen strategies are noisy; the
Ledoit-Wolf estimate (skfolio's ``LedoitWolf``, scikit-learn's under the hood) shrinks the sample
covariance toward a scaled identity by the optimal intensity, so a reader can see which pairs
survive shrinkage. The clustering is average linkage on the Pearson distance
``sqrt((1 - rho) / 2)`` (the distance skfolio's hierarchical risk parity uses); the order is the
dendrogram's optimal leaf order, so correlated strategies sit next to each other in the matrix,
and clusters cut the tree at ``CLUSTER_CORRELATION``: strategies join one cluster when their
average pairwise correlation with it is at least 0.5. (skfolio's automatic cluster count, a gap
statistic, splits three clean blocks of three into five clusters, so it is not used here.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl
from scipy.cluster.hierarchy import fcluster, leaves_list, linkage, optimal_leaf_ordering
from scipy.spatial.distance import squareform

MIN_SESSIONS = 20
CLUSTER_CORRELATION = 0.5  # average correlation at which strategies share a cluster


@dataclass(frozen=True, slots=True)
class CorrelationReport:
    """Correlations of ``assets`` (strategy names) in the input's column order.

    Attributes:
        assets: Strategy names.
        pearson: Sample Pearson correlation matrix.
        shrunk: Correlation matrix of the Ledoit-Wolf covariance.
        shrinkage: The Ledoit-Wolf shrinkage intensity in [0, 1].
        order: Indices of ``assets`` in dendrogram leaf order.
        clusters: Cluster label per asset (from 1; the tree cut at ``CLUSTER_CORRELATION``).
    """

    assets: tuple[str, ...]
    pearson: np.ndarray
    shrunk: np.ndarray
    shrinkage: float
    order: tuple[int, ...]
    clusters: tuple[int, ...]

    def table(self, which: str = "pearson") -> pl.DataFrame:
        """The matrix (``pearson`` or ``shrunk``) in clustering order, one row per asset."""
        matrix = self.pearson if which == "pearson" else self.shrunk
        idx = list(self.order)
        names = [self.assets[i] for i in idx]
        data = {"strategy": names}
        data.update({n: matrix[idx, j].round(4).tolist() for n, j in zip(names, idx, strict=True)})
        return pl.DataFrame(data)

    def pairs(self) -> pl.DataFrame:
        """Every pair once, with both estimates and whether they share a cluster."""
        rows = [
            {"a": self.assets[i], "b": self.assets[j], "pearson": float(self.pearson[i, j]),
             "shrunk": float(self.shrunk[i, j]),
             "same_cluster": self.clusters[i] == self.clusters[j]}
            for i in range(len(self.assets)) for j in range(i + 1, len(self.assets))
        ]  # fmt: skip
        return pl.DataFrame(rows)


def cov_to_corr(cov: np.ndarray) -> np.ndarray:
    """The correlation matrix of covariance ``cov`` (unit diagonal exactly)."""
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    np.fill_diagonal(corr, 1.0)
    return corr


def check_returns(returns: pd.DataFrame, what: str = "returns") -> pd.DataFrame:
    """``returns`` as float sessions x strategies, or ValueError naming the problem and the fix."""
    if returns.shape[1] < 2:
        raise ValueError(f"{what} has {returns.shape[1]} strategies; correlate at least 2")
    if returns.shape[0] < MIN_SESSIONS:
        raise ValueError(
            f"{what} has {returns.shape[0]} common sessions; need at least {MIN_SESSIONS} "
            "(backtest the strategies over a longer, overlapping span)"
        )
    values = returns.astype(float)
    if not np.isfinite(values.to_numpy()).all():
        raise ValueError(f"{what} holds NaN or infinite returns; align strategies on sessions")
    flat = [str(c) for c in values.columns[values.nunique().to_numpy() <= 1]]
    if flat:
        raise ValueError(f"{what}: {flat} have constant returns (no variance to correlate)")
    return values


def correlation_report(returns: pd.DataFrame) -> CorrelationReport:
    """Pearson and Ledoit-Wolf correlations and the clustering of ``returns``' columns.

    Args:
        returns: Daily simple returns, sessions x strategies, no gaps.

    Raises:
        ValueError: fewer than 2 strategies or ``MIN_SESSIONS`` sessions, NaNs, or a strategy
            without variance.
    """
    from skfolio.moments import LedoitWolf

    x = check_returns(returns)
    pearson = np.corrcoef(x.to_numpy(), rowvar=False)
    lw = LedoitWolf().fit(x.to_numpy())
    order, clusters = cluster(pearson)
    return CorrelationReport(
        assets=tuple(str(c) for c in x.columns),
        pearson=pearson,
        shrunk=cov_to_corr(lw.covariance_),
        shrinkage=float(lw.shrinkage_),
        order=order,
        clusters=clusters,
    )


def cluster(
    corr: np.ndarray, threshold: float = CLUSTER_CORRELATION
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Leaf order and cluster labels of correlation matrix ``corr`` (average linkage on the
    Pearson distance, cut at the distance of correlation ``threshold``)."""
    distance = np.sqrt(np.clip((1.0 - corr) / 2.0, 0.0, 1.0))
    np.fill_diagonal(distance, 0.0)
    condensed = squareform(distance, checks=False)
    tree = optimal_leaf_ordering(linkage(condensed, method="average"), condensed)
    cut = float(np.sqrt((1.0 - threshold) / 2.0))
    labels = fcluster(tree, t=cut, criterion="distance")
    return tuple(int(i) for i in leaves_list(tree)), tuple(int(c) for c in labels)
