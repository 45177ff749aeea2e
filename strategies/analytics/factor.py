"""Factor attribution of strategy returns: the market beta regression and the Greek P&L split.

:func:`market_beta` fits ``r_t = alpha + beta * m_t + e_t`` by ordinary least squares on the
periods where both returns are present and reports what a regression table shows: alpha (per
period and annualized), beta, their standard errors and t-statistics (classical homoskedastic
errors, ``n - 2`` degrees of freedom), R-squared and the residual volatility.
:func:`factor_attribution` puts it beside an options backtest's daily delta / gamma / theta /
vega / residual split (:class:`strategies.backtest.results.OptionsBacktestResult.attribution`),
so one table answers "how much was the market, how much was each Greek".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from strategies.analytics._utils import DAILY, annualization_factor, as_float_array

__all__ = ["BetaFit", "FactorAttribution", "factor_attribution", "market_beta"]


@dataclass(frozen=True, slots=True)
class BetaFit:
    """OLS of strategy returns on benchmark returns.

    Attributes:
        alpha: Intercept per period.
        beta: Slope on the benchmark's return.
        alpha_se: Standard error of ``alpha``.
        beta_se: Standard error of ``beta``.
        alpha_t: ``alpha / alpha_se``.
        beta_t: ``beta / beta_se``.
        r_squared: Share of the return variance the benchmark explains.
        residual_vol: Standard deviation of the residuals per period (``n - 2`` dof).
        n: Periods used.
        annualization: Periods per year (for :attr:`alpha_annual`).
    """

    alpha: float
    beta: float
    alpha_se: float
    beta_se: float
    alpha_t: float
    beta_t: float
    r_squared: float
    residual_vol: float
    n: int
    annualization: float

    @property
    def alpha_annual(self) -> float:
        """Alpha compounded to a year: ``(1 + alpha) ** annualization - 1``."""
        return (1.0 + self.alpha) ** self.annualization - 1.0

    def as_dict(self) -> dict[str, float]:
        """The fit as a flat name -> value dict (with ``alpha_annual``)."""
        out = {name: float(getattr(self, name)) for name in self.__slots__}
        return {**out, "alpha_annual": self.alpha_annual}


def market_beta(
    returns: Any,
    benchmark_returns: Any,
    period: str = DAILY,
    annualization: float | None = None,
) -> BetaFit:
    """OLS alpha and beta of ``returns`` on ``benchmark_returns`` with standard errors.

    Args:
        returns: Simple periodic returns of the strategy.
        benchmark_returns: The benchmark's returns over the same periods (same length).
        period: ``'daily'``, ``'weekly'`` or ``'monthly'`` (for the annualized alpha).
        annualization: Periods per year, overriding ``period``.

    Raises:
        ValueError: when the lengths differ, fewer than three periods overlap, or the
            benchmark is constant over them.
    """
    r = as_float_array(returns)
    m = as_float_array(benchmark_returns, "benchmark_returns")
    if r.shape != m.shape:
        raise ValueError(
            f"returns ({r.size}) and benchmark_returns ({m.size}) must cover the same periods"
        )
    both = np.isfinite(r) & np.isfinite(m)
    r, m = r[both], m[both]
    n = int(r.size)
    if n < 3:
        raise ValueError(f"market_beta needs at least 3 periods with both returns, got {n}")
    x = np.column_stack([np.ones(n), m])
    (alpha, beta), *_ = np.linalg.lstsq(x, r, rcond=None)
    resid = r - (alpha + beta * m)
    sxx = float(np.sum((m - m.mean()) ** 2))
    if sxx <= 1e-30:
        raise ValueError("benchmark_returns are constant over the overlap; beta is undefined")
    s2 = float(resid @ resid) / (n - 2)
    beta_se = math.sqrt(s2 / sxx)
    alpha_se = math.sqrt(s2 * (1.0 / n + m.mean() ** 2 / sxx))
    sst = float(np.sum((r - r.mean()) ** 2))
    r2 = 1.0 - float(resid @ resid) / sst if sst > 0 else math.nan
    return BetaFit(
        float(alpha), float(beta), alpha_se, beta_se,
        _ratio(alpha, alpha_se), _ratio(beta, beta_se), r2, math.sqrt(s2), n,
        float(annualization_factor(period, annualization)),
    )  # fmt: skip


def _ratio(value: float, se: float) -> float:
    if se > 0:
        return float(value) / se
    return math.copysign(math.inf, value) if value else math.nan


@dataclass(frozen=True, slots=True)
class FactorAttribution:
    """The market regression beside the Greek P&L split of the same strategy.

    Attributes:
        market: The beta regression (None without a benchmark).
        market_return: Sum over the periods of ``beta x benchmark return`` (the market's part).
        alpha_return: ``alpha x n`` (the intercept's part).
        residual_return: What neither explains (sum of the residuals).
        greeks: Total $ P&L per attribution column (delta, gamma, theta, vega, residual, ...).
    """

    market: BetaFit | None
    market_return: float
    alpha_return: float
    residual_return: float
    greeks: dict[str, float]

    def table(self) -> pl.DataFrame:
        """One row per component: ``kind`` (market / greeks), ``component``, ``value``."""
        rows: list[tuple[str, str, float]] = []
        if self.market is not None:
            rows += [("market", k, v) for k, v in self.market.as_dict().items()]
            rows += [
                ("market", "market_return", self.market_return),
                ("market", "alpha_return", self.alpha_return),
                ("market", "residual_return", self.residual_return),
            ]
        rows += [("greeks", k, v) for k, v in self.greeks.items()]
        return pl.DataFrame(rows, schema=["kind", "component", "value"], orient="row")


def factor_attribution(
    returns: Any,
    benchmark_returns: Any | None = None,
    greek_attribution: pl.DataFrame | None = None,
    period: str = DAILY,
) -> FactorAttribution:
    """Market beta of ``returns`` plus the summed Greek split of ``greek_attribution``.

    Args:
        returns: The strategy's periodic returns.
        benchmark_returns: The benchmark's returns over the same periods, or None.
        greek_attribution: An options backtest's attribution frame (``session`` plus $ columns),
            or None for strategies without options.
        period: As :func:`market_beta`.
    """
    greeks: dict[str, float] = {}
    if greek_attribution is not None:
        for name in greek_attribution.columns:
            if name != "session" and greek_attribution.schema[name].is_numeric():
                greeks[name] = float(greek_attribution.get_column(name).fill_nan(0.0).sum())
    if benchmark_returns is None:
        return FactorAttribution(None, math.nan, math.nan, math.nan, greeks)
    fit = market_beta(returns, benchmark_returns, period)
    r = as_float_array(returns)
    m = as_float_array(benchmark_returns, "benchmark_returns")
    both = np.isfinite(r) & np.isfinite(m)
    market = float(fit.beta * m[both].sum())
    alpha = fit.alpha * fit.n
    return FactorAttribution(fit, market, alpha, float(r[both].sum()) - market - alpha, greeks)
