"""Out-of-sample backtest of an allocation: fit weights on a training window, hold them through
the next test window, stitch the test windows, and compare with equal weight.

Windows come from :func:`strategies.analytics.rolling_splits` (or ``anchored_splits``), the
same helper the strategy walk-forward uses. Within a test window the weights are held constant
(rebalanced daily to the fitted weights), so the portfolio's return on a session is the
weighted sum of the strategies' returns, as skfolio's ``Portfolio`` computes it. Nothing after
a training window's last session reaches the weights used after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl

from research.portfolio.allocation import Allocation, Constraints, Method, allocate
from research.portfolio.correlation import check_returns
from strategies import analytics


@dataclass(frozen=True, slots=True)
class AllocationBacktest:
    """A walk-forward of one method beside equal weight over the same test sessions.

    Attributes:
        method: The allocation method.
        sessions: The stitched out-of-sample sessions.
        returns: The method's out-of-sample daily returns.
        equal_weight: Equal weight's daily returns over the same sessions.
        folds: One :class:`Allocation` per fold (fitted on its training window).
        fold_starts: Index in ``sessions`` where each fold's test window begins.
    """

    method: Method
    sessions: tuple[object, ...]
    returns: np.ndarray
    equal_weight: np.ndarray
    folds: tuple[Allocation, ...]
    fold_starts: tuple[int, ...]

    def metrics(self) -> dict[str, float]:
        """Sharpe, annual return and volatility, max drawdown of both curves (``ew_`` prefix)."""
        out: dict[str, float] = {}
        for prefix, r in (("", self.returns), ("ew_", self.equal_weight)):
            out[f"{prefix}sharpe_ratio"] = float(analytics.sharpe_ratio(r))
            out[f"{prefix}annual_return"] = float(analytics.annual_return(r))
            out[f"{prefix}annual_volatility"] = float(analytics.annual_volatility(r))
            out[f"{prefix}max_drawdown"] = float(analytics.max_drawdown(r))
        return out

    def equity(self, capital: float = 1.0) -> pl.DataFrame:
        """``session, equity, equal_weight_equity`` curves starting from ``capital``."""
        return pl.DataFrame(
            {
                "session": list(self.sessions),
                "equity": capital * np.cumprod(1.0 + self.returns),
                "equal_weight_equity": capital * np.cumprod(1.0 + self.equal_weight),
            }
        )

    def weights(self) -> pl.DataFrame:
        """One row per (fold, strategy): the weights held through that fold's test window."""
        rows = [
            {"fold": k, "test_start": self.sessions[s], "strategy": a, "weight": w}
            for k, (alloc, s) in enumerate(zip(self.folds, self.fold_starts, strict=True))
            for a, w in alloc.weights.items()
        ]
        return pl.DataFrame(rows)


def walk_forward_allocation(
    returns: pd.DataFrame,
    method: Method | str,
    constraints: Constraints | None = None,
    train: int = 120,
    test: int = 21,
    anchored: bool = False,
) -> AllocationBacktest:
    """Walk ``method`` forward over ``returns`` (sessions x strategies, index = sessions).

    Raises:
        ValueError: bad returns or constraints, or fewer sessions than ``train + test``.
    """
    x = check_returns(returns)
    n = x.shape[0]
    if n < train + test:
        raise ValueError(
            f"{n} common sessions are fewer than train {train} + test {test}; shorten the "
            "windows or backtest the strategies over a longer span"
        )
    make = analytics.anchored_splits if anchored else analytics.rolling_splits
    matrix = x.to_numpy()
    ew = np.full(x.shape[1], 1.0 / x.shape[1])
    folds: list[Allocation] = []
    starts: list[int] = []
    oos: list[np.ndarray] = []
    oos_ew: list[np.ndarray] = []
    sessions: list[object] = []
    for sp in make(n, train, test):
        alloc = allocate(x.iloc[sp.train_start : sp.train_stop], method, constraints)
        w = np.array(list(alloc.weights.values()))
        held = matrix[sp.test_start : sp.test_stop]
        starts.append(len(sessions))
        sessions.extend(x.index[sp.test_start : sp.test_stop])
        oos.append(held @ w)
        oos_ew.append(held @ ew)
        folds.append(alloc)
    return AllocationBacktest(
        Method(method), tuple(sessions), np.concatenate(oos), np.concatenate(oos_ew),
        tuple(folds), tuple(starts),
    )  # fmt: skip
