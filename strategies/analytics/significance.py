"""Statistical significance of Sharpe ratios (Bailey & López de Prado).

* PSR and MinTRL: "The Sharpe Ratio Efficient Frontier", Journal of Risk 15(2), 2012.
* Expected maximum Sharpe and DSR: "The Deflated Sharpe Ratio: Correcting for Selection Bias,
  Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5), 2014.

All Sharpe ratios here are **per period** (not annualized), in the frequency of the returns they
were estimated from: divide an annualized Sharpe by ``sqrt(periods per year)`` first. Kurtosis is
**raw** (Pearson, normal = 3, ``scipy.stats.kurtosis(fisher=False)``), not excess kurtosis.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from strategies.analytics._utils import as_float_array, finite_or_nan

__all__ = [
    "EULER_GAMMA",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "min_track_record_length",
    "probabilistic_sharpe_ratio",
]

#: Euler-Mascheroni constant used in the expected-maximum approximation.
EULER_GAMMA = 0.5772156649015329


class _SharpeMoments(NamedTuple):
    sr: float
    n_obs: float
    skew: float
    kurtosis: float


def _moments(
    returns_or_sr: Any, n_obs: float | None, skew: float | None, kurtosis: float | None
) -> _SharpeMoments:
    """Per-period Sharpe, sample size, skewness and raw kurtosis from returns or a scalar SR."""
    if np.ndim(returns_or_sr) == 0:
        return _SharpeMoments(
            float(returns_or_sr),
            np.nan if n_obs is None else float(n_obs),
            0.0 if skew is None else float(skew),
            3.0 if kurtosis is None else float(kurtosis),
        )
    r = finite_or_nan(as_float_array(returns_or_sr))
    if r.size < 2:
        return _SharpeMoments(np.nan, float(r.size), np.nan, np.nan)
    n = float(r.size) if n_obs is None else float(n_obs)
    if np.ptp(r) == 0:  # zero dispersion: SR is +-inf or NaN, higher moments undefined
        with np.errstate(divide="ignore", invalid="ignore"):
            sr = float(np.float64(r[0]) / 0.0)
        return _SharpeMoments(sr, n, np.nan, np.nan)
    g3 = float(stats.skew(r)) if skew is None else float(skew)
    g4 = float(stats.kurtosis(r, fisher=False)) if kurtosis is None else float(kurtosis)
    return _SharpeMoments(float(np.mean(r) / np.std(r, ddof=1)), n, g3, g4)


def _sr_variance_factor(m: _SharpeMoments) -> float:
    """``1 - skew * SR + (kurtosis - 1) / 4 * SR**2``: n times the variance of the SR estimate."""
    if np.isfinite(m.skew) and np.isfinite(m.kurtosis) and m.kurtosis < 1 + m.skew**2 - 1e-12:
        raise ValueError(
            f"kurtosis={m.kurtosis} is impossible for raw kurtosis with skew={m.skew} "
            "(raw kurtosis >= 1 + skew**2; a normal distribution has 3). Did you pass excess "
            "(Fisher) kurtosis? Add 3, or use scipy.stats.kurtosis(x, fisher=False)."
        )
    return 1.0 - m.skew * m.sr + (m.kurtosis - 1.0) / 4.0 * m.sr**2


def _psr_from_moments(m: _SharpeMoments, sr_benchmark: float) -> float:
    if not np.isfinite(m.n_obs) or m.n_obs < 2:
        return np.nan
    factor = _sr_variance_factor(m)
    if not (np.isfinite(m.sr) and np.isfinite(factor)) or factor <= 0:
        return np.nan
    z = (m.sr - sr_benchmark) * np.sqrt(m.n_obs - 1.0) / np.sqrt(factor)
    return float(stats.norm.cdf(z))


def probabilistic_sharpe_ratio(
    returns_or_sr: Any,
    sr_benchmark: float = 0.0,
    n_obs: float | None = None,
    skew: float | None = None,
    kurtosis: float | None = None,
) -> float:
    """Probabilistic Sharpe ratio: the probability that the true Sharpe exceeds a benchmark.

    ``PSR = Phi((SR - SR*) * sqrt(n - 1) / sqrt(1 - skew * SR + (kurt - 1) / 4 * SR**2))``
    with the estimated per-period SR in the denominator (Bailey & López de Prado 2012, eq. 11).

    Args:
        returns_or_sr: Periodic (excess) returns, or an already estimated per-period Sharpe.
        sr_benchmark: Per-period benchmark Sharpe ``SR*``.
        n_obs: Number of observations; required with a scalar SR, else the valid returns count.
        skew: Skewness; default from the returns (biased sample skewness), or 0 for a scalar SR.
        kurtosis: RAW kurtosis; default from the returns (``fisher=False``), or 3 for a scalar SR.

    Returns:
        The PSR in [0, 1]; NaN when undefined (fewer than two observations, zero dispersion).

    Raises:
        ValueError: If ``kurtosis`` cannot be a raw kurtosis (e.g. excess kurtosis passed).
    """
    m = _moments(returns_or_sr, n_obs, skew, kurtosis)
    return _psr_from_moments(m, sr_benchmark)


def expected_max_sharpe(n_trials: int, sr_variance: float, sr_mean: float = 0.0) -> float:
    """Expected maximum of ``n_trials`` independent Sharpe estimates (False Strategy Theorem).

    ``E[max SR] ~ mean + sqrt(V) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e)))`` with
    ``g`` the Euler-Mascheroni constant (Bailey & López de Prado 2014, eq. 2).

    Args:
        n_trials: Number of independent trials ``N`` (>= 1); one trial has no selection bias.
        sr_variance: Variance of the trials' Sharpe ratios, in the same units as the result.
        sr_mean: Mean Sharpe of the trials under the null (0 in the paper).

    Returns:
        The expected maximum Sharpe ratio.

    Raises:
        ValueError: If ``n_trials < 1`` or ``sr_variance < 0``.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if sr_variance < 0:
        raise ValueError(f"sr_variance must be >= 0, got {sr_variance}")
    if n_trials == 1:
        return float(sr_mean)
    z = (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n_trials) + EULER_GAMMA * stats.norm.ppf(
        1 - 1 / (n_trials * math.e)
    )
    return float(sr_mean + np.sqrt(sr_variance) * z)


def deflated_sharpe_ratio(
    observed_sr: Any,
    sr_variance: float | None = None,
    n_trials: int | None = None,
    n_obs: float | None = None,
    skew: float | None = None,
    kurtosis: float | None = None,
    *,
    trial_srs: Any = None,
) -> float:
    """Deflated Sharpe ratio: the PSR against the expected maximum Sharpe of the trials.

    ``DSR = PSR(SR0)`` with ``SR0 = expected_max_sharpe(n_trials, V[SR_n])``; it corrects the
    selected strategy's Sharpe for the number of trials, non-normality and sample length.

    Args:
        observed_sr: Per-period Sharpe of the selected strategy, or its periodic returns.
        sr_variance: Variance of the trials' per-period Sharpe ratios (or pass ``trial_srs``).
        n_trials: Number of independent trials; defaults to ``len(trial_srs)``.
        n_obs: Number of return observations behind ``observed_sr``.
        skew: Skewness of the selected strategy's returns (default 0 for a scalar SR).
        kurtosis: Its RAW kurtosis (default 3 for a scalar SR); not excess kurtosis.
        trial_srs: Per-period Sharpe ratios of all trials; their ``ddof=1`` variance is used.

    Returns:
        The DSR in [0, 1].

    Raises:
        ValueError: If neither or both of ``sr_variance``/``trial_srs`` are given, if
            ``n_trials`` is missing, or if ``kurtosis`` is impossible for a raw kurtosis.
    """
    if (sr_variance is None) == (trial_srs is None):
        raise ValueError("pass exactly one of sr_variance (a number) or trial_srs (an array)")
    if sr_variance is not None and np.ndim(sr_variance) != 0:
        raise ValueError(
            "sr_variance must be a scalar; pass the trials' Sharpe ratios as trial_srs="
        )
    if trial_srs is not None:
        srs = as_float_array(trial_srs, "trial_srs")
        srs = srs[np.isfinite(srs)]
        if srs.size < 2:
            raise ValueError("trial_srs needs at least two finite Sharpe ratios")
        sr_variance = float(np.var(srs, ddof=1))
        n_trials = srs.size if n_trials is None else n_trials
    if n_trials is None or sr_variance is None:
        raise ValueError("n_trials is required with sr_variance")
    m = _moments(observed_sr, n_obs, skew, kurtosis)
    return _psr_from_moments(m, expected_max_sharpe(n_trials, sr_variance))


def min_track_record_length(
    returns_or_sr: Any,
    sr_benchmark: float = 0.0,
    confidence: float = 0.95,
    skew: float | None = None,
    kurtosis: float | None = None,
) -> float:
    """Minimum track record length for the Sharpe to beat ``sr_benchmark`` at ``confidence``.

    ``MinTRL = 1 + (1 - skew * SR + (kurt - 1) / 4 * SR**2) * (Z_confidence / (SR - SR*))**2``
    (Bailey & López de Prado 2012, eq. 12); it is the ``n`` at which the PSR equals
    ``confidence``.

    Args:
        returns_or_sr: Periodic (excess) returns, or a per-period Sharpe estimate.
        sr_benchmark: Per-period benchmark Sharpe ``SR*``.
        confidence: Required probability, e.g. 0.95.
        skew: Skewness (default from the returns, or 0 for a scalar SR).
        kurtosis: RAW kurtosis (default from the returns, or 3 for a scalar SR).

    Returns:
        The number of observations (in the returns' frequency, not rounded); ``inf`` when the
        Sharpe does not exceed the benchmark; NaN when the Sharpe is undefined.

    Raises:
        ValueError: If ``confidence`` is not in (0, 1) or ``kurtosis`` is impossible.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    m = _moments(returns_or_sr, None, skew, kurtosis)
    factor = _sr_variance_factor(m)
    if not (np.isfinite(m.sr) and np.isfinite(factor)):
        return np.nan
    if m.sr <= sr_benchmark:
        return np.inf
    return float(1.0 + factor * (stats.norm.ppf(confidence) / (m.sr - sr_benchmark)) ** 2)
