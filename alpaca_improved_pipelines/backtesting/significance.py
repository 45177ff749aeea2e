"""Per-variant PSR and DSR of a finished sweep, every variant at once.

Row by row, ``strategies.analytics`` costs ~1.4 ms per variant (the Sharpe, scipy's skewness
and kurtosis twice, the expected maximum Sharpe's two normal quantiles and two normal CDFs, all
through scalar calls): 14 s of CPU for a 10,000-point sweep, ten times what logging it to MLflow
takes. Here the same formulas run on blocks of the (variants x sessions) matrix: numpy's
reductions along a contiguous row sum exactly as on the row alone, the moments are scipy's
formulas on one row, the expected maximum Sharpe is computed once and the normal CDF elementwise,
so the PSR and DSR are the row-by-row values bit for bit (``tests/research/
test_sweep_significance.py``); about 0.9 s of CPU for 10,000 variants x 2,516 sessions. Returns
of unequal length or with NaNs go row by row, as before.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import special, stats

from strategies import analytics

PERIODS = 252  # daily returns: analytics.sharpe_ratio's default annualization
BLOCK = 1024  # variants per block: temporaries of BLOCK x sessions floats, not of the whole sweep


def add_significance(results: pl.DataFrame, n_trials_total: int) -> pl.DataFrame:
    """Per-variant PSR and DSR; DSR deflates by every trial in the family's ledger.

    Undefined metrics (NaN, e.g. the Sharpe of a variant that never traded) become nulls so
    that they rank last instead of first (polars sorts NaN above every number).
    """
    floats = [c for c, t in results.schema.items() if t == pl.Float64]
    results = results.with_columns(pl.col(floats).fill_nan(None))
    ok = results.filter(pl.col("error").is_null())
    if ok.is_empty():
        return results
    returns = ok.get_column("returns")
    row = _row_stats(returns)
    if row is None:
        dsr, psr, var = _row_by_row(returns, n_trials_total)
    else:
        dsr, psr, var = _all_at_once(row, returns.list.len()[0], n_trials_total)
    ok = ok.with_columns(
        pl.Series("dsr", dsr, dtype=pl.Float64),
        pl.Series("psr", psr, dtype=pl.Float64),
        pl.lit(var).alias("sr_variance"),
        pl.lit(n_trials_total).alias("n_trials"),
    )
    return pl.concat([ok, results.filter(pl.col("error").is_not_null())], how="diagonal_relaxed")


def _row_stats(returns: pl.Series) -> dict[str, np.ndarray] | None:
    """Per row: constant or not, mean, std (ddof 1), skewness and raw kurtosis; None when the
    returns are of unequal length, shorter than two, or hold a null, NaN or infinity."""
    lengths = returns.list.len()
    if lengths.null_count() or lengths.n_unique() != 1 or lengths[0] < 2:
        return None
    width = int(lengths[0])
    parts = []
    for start in range(0, len(returns), BLOCK):
        block = returns.slice(start, BLOCK).explode()
        if block.null_count():
            return None
        rets = np.ascontiguousarray(block.to_numpy().reshape(-1, width))
        if not np.isfinite(rets).all():
            return None
        mean = rets.mean(axis=1)
        skew, kurt = _moments(rets, mean)
        parts.append(
            {
                "constant": rets.max(axis=1) == rets.min(axis=1),
                "mean": mean,
                "std": rets.std(axis=1, ddof=1),  # = nanstd on finite rows
                "skew": skew,
                "kurt": kurt,
            }
        )
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _moments(rets: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, ``scipy.stats.skew(row)`` and ``scipy.stats.kurtosis(row, fisher=False)`` as
    scipy 1.17 computes them on one row (central moments by repeated squaring; NaN when the
    second moment vanishes next to the mean). Only the ``m2**1.5`` is taken per element with
    Python's ``pow``: on an array numpy uses its own SIMD power, which differs in the last bit.
    """
    dev = rets - mean[:, None]
    sq = dev**2
    m2 = sq.mean(axis=1)
    m3 = (sq * dev).mean(axis=1)
    m4 = (sq**2).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        zero = m2 <= (np.finfo(np.float64).eps * mean) ** 2
        m2_15 = np.array([v**1.5 for v in m2.tolist()])
        skew = np.where(zero, np.nan, m3 / m2_15)
        kurt = np.where(zero, np.nan, m4 / m2**2.0)
    return skew, kurt


def _all_at_once(
    row: dict[str, np.ndarray], n_obs: int, n_trials: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """(dsr, psr, sr_variance) from :func:`_row_stats`."""
    # analytics.sharpe_ratio, per period: mean / std(ddof=1), std 0 for a constant series
    std = np.where(row["constant"] & np.isfinite(row["std"]), 0.0, row["std"])
    with np.errstate(divide="ignore", invalid="ignore"):
        srs = row["mean"] / std * np.sqrt(PERIODS) / np.sqrt(PERIODS)
        own_sr = row["mean"] / row["std"]  # the PSR's own estimate from the returns
    srs = np.where(np.isfinite(srs), srs, np.nan)
    var = float(np.nanvar(srs, ddof=1)) if np.isfinite(srs).sum() > 1 else 0.0
    undefined = ~np.isfinite(srs)
    if var <= 0:
        nan = np.full(len(srs), np.nan)
        return nan, nan.copy(), var
    emax = analytics.expected_max_sharpe(max(n_trials, 2), var)
    dsr = _psr(srs, float(n_obs), row["skew"], row["kurt"], emax)
    psr = np.where(
        row["constant"], np.nan, _psr(own_sr, float(n_obs), row["skew"], row["kurt"], 0.0)
    )
    return np.where(undefined, np.nan, dsr), np.where(undefined, np.nan, psr), var


def _psr(
    sr: np.ndarray, n_obs: float, skew: np.ndarray, kurt: np.ndarray, benchmark: float
) -> np.ndarray:
    """``analytics.probabilistic_sharpe_ratio`` from moments, elementwise."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        factor = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
        z = (sr - benchmark) * np.sqrt(n_obs - 1.0) / np.sqrt(factor)
        ok = np.isfinite(sr) & np.isfinite(factor) & (factor > 0)
        return np.where(ok, special.ndtr(np.where(ok, z, 0.0)), np.nan)


def _row_by_row(returns: pl.Series, n_trials: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The per-variant calls of ``strategies.analytics``, for returns :func:`_row_stats`
    refuses."""
    rows = [np.asarray(r, dtype=np.float64) for r in returns]
    srs = np.array([analytics.sharpe_ratio(r) / np.sqrt(PERIODS) for r in rows])
    srs = np.where(np.isfinite(srs), srs, np.nan)
    var = float(np.nanvar(srs, ddof=1)) if np.isfinite(srs).sum() > 1 else 0.0
    dsr, psr = [], []
    for sr, arr in zip(srs, rows, strict=True):
        if not np.isfinite(sr) or var <= 0:
            dsr.append(float("nan"))
            psr.append(float("nan"))
            continue
        skew = float(stats.skew(arr))
        kurt = float(stats.kurtosis(arr, fisher=False))
        dsr.append(
            float(analytics.deflated_sharpe_ratio(sr, var, max(n_trials, 2), len(arr), skew, kurt))
        )
        psr.append(float(analytics.probabilistic_sharpe_ratio(arr)))
    return np.array(dsr, dtype=np.float64), np.array(psr, dtype=np.float64), var
