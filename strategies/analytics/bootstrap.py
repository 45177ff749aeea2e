"""Block-bootstrap confidence intervals for any return statistic.

Randomness comes only from the explicit ``seed`` argument, so a call is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from strategies.analytics._utils import as_float_array, finite_or_nan

__all__ = ["ConfidenceInterval", "bootstrap_ci", "block_bootstrap_indices"]

BootstrapMethod = Literal["stationary", "circular"]


@dataclass(frozen=True, slots=True)
class ConfidenceInterval:
    """A bootstrap percentile confidence interval.

    Attributes:
        estimate: The statistic on the original sample.
        lower: Lower bound (the ``alpha / 2`` quantile of the bootstrap distribution).
        upper: Upper bound (the ``1 - alpha / 2`` quantile).
        alpha: Two-sided significance level (0.05 gives a 95 % interval).
        n_boot: Number of bootstrap resamples.
        block_size: Mean (stationary) or fixed (circular) block length used.
        method: ``'stationary'`` or ``'circular'``.
    """

    estimate: float
    lower: float
    upper: float
    alpha: float
    n_boot: int
    block_size: int
    method: str

    def contains(self, value: float) -> bool:
        """Return whether ``value`` lies inside the closed interval."""
        return bool(self.lower <= value <= self.upper)


def block_bootstrap_indices(
    n_obs: int,
    n_boot: int,
    block_size: int,
    *,
    seed: int,
    method: BootstrapMethod = "stationary",
) -> np.ndarray:
    """Resampling indices for the stationary or circular block bootstrap.

    Stationary (Politis & Romano 1994): blocks start at uniform random positions and have
    geometric lengths with mean ``block_size``. Circular (Politis & Romano 1992): fixed-length
    blocks. Both wrap around the end of the sample, so every observation is equally likely.

    Args:
        n_obs: Sample length.
        n_boot: Number of resamples.
        block_size: Mean (stationary) or exact (circular) block length, >= 1.
        seed: Seed for ``numpy.random.default_rng``.
        method: ``'stationary'`` or ``'circular'``.

    Returns:
        An ``(n_boot, n_obs)`` integer array of indices into the sample.
    """
    rng = np.random.default_rng(seed)
    if method == "stationary":
        starts = rng.integers(0, n_obs, size=(n_boot, n_obs))
        new_block = rng.random((n_boot, n_obs)) < 1.0 / block_size
        new_block[:, 0] = True
        t = np.arange(n_obs)
        # Position where the current block began, carried forward along each row.
        block_start = np.maximum.accumulate(np.where(new_block, t, 0), axis=1)
        first = np.take_along_axis(starts, block_start, axis=1)
        return (first + (t - block_start)) % n_obs
    if method == "circular":
        n_blocks = math.ceil(n_obs / block_size)
        starts = rng.integers(0, n_obs, size=(n_boot, n_blocks, 1))
        idx = (starts + np.arange(block_size)) % n_obs
        return idx.reshape(n_boot, n_blocks * block_size)[:, :n_obs]
    raise ValueError(f"method must be 'stationary' or 'circular', got {method!r}")


def bootstrap_ci(
    returns: Any,
    stat_fn: Callable[[np.ndarray], float],
    n_boot: int = 1000,
    alpha: float = 0.05,
    *,
    seed: int,
    method: BootstrapMethod = "stationary",
    block_size: int | None = None,
) -> ConfidenceInterval:
    """Percentile confidence interval of ``stat_fn`` by block bootstrap.

    Blocks keep short-range autocorrelation and volatility clustering inside each resample,
    which an i.i.d. bootstrap would destroy. NaNs are dropped before resampling.

    Args:
        returns: Simple periodic returns.
        stat_fn: Statistic of a 1-D array, e.g. ``sharpe_ratio`` or ``max_drawdown``.
        n_boot: Number of resamples.
        alpha: Two-sided level; the interval covers ``1 - alpha``.
        seed: Seed of the random generator (required: results must be reproducible).
        method: ``'stationary'`` (geometric block lengths) or ``'circular'`` (fixed blocks).
        block_size: (Mean) block length; default ``round(n ** (1/3))``, at least 1.

    Returns:
        The :class:`ConfidenceInterval`; NaN bounds when fewer than two observations remain.

    Raises:
        ValueError: On a non-positive ``n_boot``/``block_size`` or ``alpha`` outside (0, 1).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    r = finite_or_nan(as_float_array(returns))
    n = r.size
    size = max(1, round(n ** (1 / 3))) if block_size is None else int(block_size)
    if size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    estimate = float(stat_fn(r)) if n else np.nan
    if n < 2:
        return ConfidenceInterval(estimate, np.nan, np.nan, alpha, n_boot, size, method)
    idx = block_bootstrap_indices(n, n_boot, size, seed=seed, method=method)
    boot = np.array([stat_fn(r[row]) for row in idx], dtype=np.float64)
    boot = boot[~np.isnan(boot)]
    if boot.size == 0:
        return ConfidenceInterval(estimate, np.nan, np.nan, alpha, n_boot, size, method)
    lower, upper = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return ConfidenceInterval(estimate, float(lower), float(upper), alpha, n_boot, size, method)
