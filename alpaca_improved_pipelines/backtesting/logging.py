"""Log a finished sweep to MLflow: the parent run's table and heatmap, children for the best."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from alpaca_improved_pipelines.backtesting import plots
from alpaca_improved_pipelines.backtesting.data import CloseMatrix
from alpaca_improved_pipelines.backtesting.families import family
from alpaca_improved_pipelines.backtesting.sweep import SweepSpec, variant_trades
from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker

METRICS = (
    "sharpe_ratio",
    "sortino_ratio",
    "annual_return",
    "annual_volatility",
    "max_drawdown",
    "calmar_ratio",
    "total_return",
    "psr",
    "dsr",
    "exposure",
)


def _heatmap_axes(name: str) -> tuple[str, str] | None:
    """(x, y): the family's second and first declared parameters (None with fewer than two)."""
    names = family(name).param_names()
    return (names[1], names[0]) if len(names) >= 2 else None


def _heatmap(name: str, ok: pl.DataFrame, out: Path) -> list[Path]:
    axes = _heatmap_axes(name)
    if axes is None:
        return []
    xname, yname = axes
    params = pl.DataFrame(
        [
            {**json.loads(p), "sharpe_ratio": s}
            for p, s in zip(ok["params"], ok["sharpe_ratio"], strict=True)
        ]
    )
    grid = params.group_by(yname, xname).agg(pl.col("sharpe_ratio").max())
    xs = sorted(grid[xname].unique().to_list())
    ys = sorted(grid[yname].unique().to_list())
    z = np.full((len(ys), len(xs)), np.nan)
    for row in grid.iter_rows(named=True):
        z[ys.index(row[yname]), xs.index(row[xname])] = row["sharpe_ratio"]
    return plots.heatmap(z, xs, ys, xname, yname, f"{name}: Sharpe by parameters", out)


def _variant_metrics(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(row[k]) for k in METRICS if row.get(k) is not None}


def log_sweep(
    tracker: Tracker,
    run_id: str,
    spec: SweepSpec,
    results: pl.DataFrame,
    data: CloseMatrix,
    tags: RunTags,
    top_k: int = 3,
) -> list[str]:
    """Fill the (already started) parent run and create child runs for the ``top_k`` variants."""
    ok = results.filter(pl.col("error").is_null()).sort(
        "sharpe_ratio", descending=True, nulls_last=True
    )
    failed = results.height - ok.height
    table = results.drop("returns") if "returns" in results.columns else results
    best = ok.row(0, named=True) if ok.height else {}
    tracker.log(
        run_id,
        params={
            "family": spec.family,
            "search": spec.search,
            "points": len(spec.points),
            "fees": spec.fees,
            "slippage": spec.slippage,
            "init_cash": spec.init_cash,
            "seed": spec.seed,
            "symbols": ",".join(data.symbols),
        },
        metrics={
            "n_trials": ok.height,
            "n_failed": failed,
            "trials_so_far": float(best.get("n_trials", ok.height)),
            "best_sharpe_ratio": best.get("sharpe_ratio", float("nan")),
            "best_dsr": best.get("dsr", float("nan")),
            "sr_variance": best.get("sr_variance", float("nan")),
            "fastpath_max_abs_diff": _max(ok, "fastpath_abs_diff"),
        },
    )
    tracker.log_frame(run_id, table, "results.parquet")
    children: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        if ok.height:
            for path in _heatmap(spec.family, ok, Path(tmp) / "heatmap"):
                tracker.log_file(run_id, path, "plots")
        for rank, row in enumerate(ok.head(top_k).iter_rows(named=True), start=1):
            child = tracker.start_run(
                spec.family, f"{spec.family}#{rank}", "variant", tags, parent_run_id=run_id
            )
            tracker.log(
                child,
                params=json.loads(row["params"]),
                metrics={**_variant_metrics(row), "rank": rank, "trades": float(row["trades"])},
            )
            rets = np.asarray(row["returns"])
            for path in plots.equity_and_drawdown(
                data.sessions, rets, f"{spec.family} #{rank}", Path(tmp) / f"equity_{rank}"
            ):
                tracker.log_file(child, path, "plots")
            tracker.log_frame(
                child,
                pl.DataFrame({"session": data.sessions, "return": rets}),
                "daily_returns.parquet",
            )
            trades = variant_trades(spec, json.loads(row["params"]), data)
            tracker.log_frame(child, trades, "trades.parquet")
            tracker.finish(child)
            children.append(child)
    tracker.finish(run_id)
    return children


def _max(frame: pl.DataFrame, column: str) -> float:
    """Largest value of ``column`` (NaN when the column is absent or empty)."""
    if column not in frame.columns or frame.is_empty():
        return float("nan")
    value = frame.select(pl.col(column).max()).item()
    return float("nan") if value is None else float(value)
