"""Research benchmarks (issue 5): our general sweep path vs raw vectorbt on the same grid, and
logging a 10,000-point sweep to MLflow. Prints ratios; asserts nothing.

    python benchmarks/bench_research.py
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.backtesting.data import CloseMatrix
from alpaca_improved_pipelines.backtesting.families import family
from alpaca_improved_pipelines.backtesting.logging import log_sweep
from alpaca_improved_pipelines.backtesting.sweep import SweepSpec, add_significance, evaluate_chunk
from alpaca_improved_pipelines.sources.synthetic_market import daily_path
from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker

SYMBOLS = ["SPY", "QQQ", "AAPL", "MSFT", "NVDA"]


def closes() -> CloseMatrix:
    sessions = cal.sessions_between(dt.date(2015, 1, 2), dt.date(2024, 12, 31))
    idx = [cal.session_index(s) for s in sessions]
    close = np.column_stack([daily_path(7, s).close[idx] for s in SYMBOLS])
    return CloseMatrix(sessions, SYMBOLS, close, {"synthetic": "seed-7"})


def raw_vectorbt(spec: SweepSpec, data: CloseMatrix) -> None:
    import vectorbt as vbt

    fam = family(spec.family)
    sigs = [fam.signals(p, data.symbols, data.close) for p in spec.points]
    close = np.tile(data.close, (1, len(spec.points)))
    pf = vbt.Portfolio.from_signals(
        close,
        np.hstack([e for e, _ in sigs]),
        np.hstack([x for _, x in sigs]),
        fees=spec.fees,
        slippage=spec.slippage,
        freq="1D",
        init_cash=spec.init_cash / len(data.symbols),
    )
    pf.value()
    pf.total_return()
    pf.trades.count()


def bench_general_path(data: CloseMatrix) -> None:
    fam = family("ma_crossover")
    pts = [p for p in fam.grid()][:60]
    spec = SweepSpec("ma_crossover", pts)
    evaluate_chunk(spec, pts[:2], data)  # warm-up (numba compile)
    raw_vectorbt(spec, data)
    t0 = time.perf_counter()
    raw_vectorbt(spec, data)
    t_raw = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluate_chunk(spec, pts, data)
    t_ours = time.perf_counter() - t0
    bare = SweepSpec("ma_crossover", pts, verify=False)
    t0 = time.perf_counter()
    evaluate_chunk(bare, pts, data)
    t_bare = time.perf_counter() - t0
    n = len(pts) * len(data.symbols) * len(data.sessions)
    print(
        f"general sweep path, {len(pts)} points x {len(data.symbols)} symbols x "
        f"{len(data.sessions)} bars, one process"
    )
    print(
        f"  raw vectorbt (signals, simulation, value, returns, trades) {t_raw:6.2f} s "
        f"{n / t_raw / 1e6:6.2f} M combo-bars/s"
    )
    print(
        f"  ours, metrics only (verify=False)          {t_bare:6.2f} s "
        f"overhead {t_bare / t_raw - 1:+.0%} (target <= +10%)"
    )
    print(
        f"  ours + fast-path re-simulation per point   {t_ours:6.2f} s "
        f"overhead {t_ours / t_raw - 1:+.0%}"
    )


def bench_mlflow(data: CloseMatrix) -> None:
    n = 10_000
    rng = np.random.default_rng(0)
    rets = rng.normal(0.0003, 0.01, size=len(data.sessions))
    fast = rng.integers(1, 100, n)
    rows = pl.DataFrame(
        {
            "params": [f'{{"fast": {f}, "slow": {f + 1 + i % 150}}}' for i, f in enumerate(fast)],
            "sharpe_ratio": rng.normal(0.5, 0.4, n),
            "total_return": rng.normal(0.1, 0.2, n),
            "trades": rng.integers(1, 50, n),
            "fastpath_abs_diff": np.zeros(n),
            "error": [None] * n,
            "returns": [rets.tolist()] * n,
        }
    )
    rows = add_significance(rows, n)
    spec = SweepSpec("ma_crossover", [{}] * n)
    with tempfile.TemporaryDirectory() as tmp:
        tracker = Tracker(Path(tmp))
        tracker.experiment_id("ma_crossover")  # store creation is not part of the sweep
        tags = RunTags("bench", "ma_crossover_sweep", data.partition_range, data.data_versions)
        t0 = time.perf_counter()
        parent = tracker.start_run("ma_crossover", "bench", "sweep", tags)
        log_sweep(tracker, parent, spec, rows.head(n), data, tags, top_k=3)
        t = time.perf_counter() - t0
    print(
        f"MLflow: a {n:,}-point sweep (parent with results table + heatmap, 3 children with "
        f"plots and trades) logged in {t:.2f} s (target < 5 s)"
    )


def main() -> None:
    data = closes()
    bench_general_path(data)
    bench_mlflow(data)


if __name__ == "__main__":
    main()
