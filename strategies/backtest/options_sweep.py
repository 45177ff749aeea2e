"""Parameter sweeps and walk-forward of an options family on the options engine.

An options family has no vectorbt form: each point of a sweep is one run of
:func:`~strategies.backtest.options_engine.run_options_backtest` (the family's own ``decide()``,
the same one live trading calls) over a prepared chain archive shared by all points. Vol-surface
filters (``min_iv_rank``, ``require_contango``, ``premium_scale``...) are parameters like any
other: a point names them, its row counts toward ``n_trials`` and the Deflated Sharpe deflates
by all of them. ``returns`` (sessions x points) is what the pipelines' walk-forward chooses from
fold by fold (``alpaca_improved_pipelines.defs.research.options_sweep``), so an options family
reaches the leaderboard and the promotion gates like a signal family.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from strategies import analytics
from strategies.backtest.archive import ChainArchive
from strategies.backtest.config import OptionsBacktestConfig
from strategies.backtest.options_engine import run_options_backtest
from strategies.base import create_strategy


@dataclass(frozen=True)
class OptionsSweep:
    """A finished options sweep.

    Attributes:
        table: One row per point: ``point``, ``params`` (JSON of the full config), ``trades``
            (filled opening and closing orders), ``total_return``, ``sharpe_ratio``,
            ``max_drawdown``, ``dsr`` and ``n_trials`` (every point of the sweep).
        returns: Daily returns (the first session's against the initial cash), shape
            ``(sessions, points)``.
        sessions: The traded sessions.
    """

    table: pl.DataFrame
    returns: np.ndarray
    sessions: list[date]


def sweep_options(
    name: str,
    points: Sequence[Mapping[str, Any]],
    chains: pl.DataFrame | ChainArchive,
    *,
    base: Mapping[str, Any] | None = None,
    config: OptionsBacktestConfig | None = None,
    bars: pl.DataFrame | None = None,
    vol_features: pl.DataFrame | None = None,
) -> OptionsSweep:
    """Backtest options family ``name`` at every point (``base`` params plus the point's).

    Raises:
        ValueError: No points, or a point the family's config refuses (naming it).
    """
    if not points:
        raise ValueError(f"sweep of {name} has no points; give at least one parameter set")
    archive = chains if isinstance(chains, ChainArchive) else ChainArchive.from_frame(chains)
    config = config or OptionsBacktestConfig()
    rows, columns = [], []
    sessions: list[date] = []
    for i, point in enumerate(points):
        try:
            strategy = create_strategy(name, {**(base or {}), **point})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} sweep point {i} {dict(point)}: {exc}") from None
        result = run_options_backtest(
            strategy, archive, config, bars=bars, vol_features=vol_features
        )
        equity = result.daily.get_column("equity").to_numpy()
        rets = equity / np.concatenate(([config.initial_cash], equity[:-1])) - 1.0
        sessions = result.daily.get_column("session").to_list()
        orders = result.orders
        trades = orders.filter(pl.col("status") == "filled").height
        columns.append(rets)
        rows.append(
            {
                "point": i,
                "params": json.dumps(strategy.params(), sort_keys=True, default=str),
                "trades": trades,
                "total_return": float(np.prod(1.0 + rets) - 1.0),
                "sharpe_ratio": float(analytics.sharpe_ratio(rets)),
                "max_drawdown": float(analytics.max_drawdown(rets)),
            }
        )
    returns = np.column_stack(columns)
    table = pl.DataFrame(rows).with_columns(
        pl.Series("dsr", _dsr(returns)), pl.lit(len(points)).alias("n_trials")
    )
    return OptionsSweep(table, returns, sessions)


def _dsr(returns: np.ndarray) -> list[float | None]:
    """Each point's Deflated Sharpe against the Sharpe ratios of all the sweep's points."""
    with np.errstate(divide="ignore", invalid="ignore"):
        srs = returns.mean(axis=0) / returns.std(axis=0, ddof=1)
    if np.isfinite(srs).sum() < 2:
        return [None] * returns.shape[1]
    out: list[float | None] = []
    for k in range(returns.shape[1]):
        col = returns[:, k]
        finite_sr = bool(np.isfinite(srs[k]))
        dsr = analytics.deflated_sharpe_ratio(col, trial_srs=srs) if finite_sr else None
        out.append(None if dsr is None else float(dsr))
    return out
