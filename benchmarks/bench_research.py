"""Research benchmarks (issues 5, 14): our general sweep path vs raw vectorbt on the same grid,
a 10,000-point sweep's significance, and logging it to MLflow vs bare MLflow calls. Each side
runs in the same process, interleaved, ``--reps`` times; prints medians, ranges (min-max), the
ratio of the medians and the median of the per-round ratios, with the load average (the machine
is shared). Asserts nothing.

    python benchmarks/bench_research.py [--reps 9] [--mlflow-reps 5] [--significance-reps 2]

What is compared:

* general sweep path: ``evaluate_chunk`` of 60 ``ma_crossover`` points x 5 symbols x 2,516
  sessions (signals, one vectorbt simulation, value path, every metric, trades, exposure, the
  returns lists, the result frame), with and without the default fast-path re-simulation,
  against raw vectorbt (signals, ``Portfolio.from_signals``, ``value()``, ``total_return()``,
  ``trades.count()``). Target: at most +10%.
* significance: ``add_significance`` (PSR and DSR of every variant, what the sweep asset runs
  between the sweep and ``log_sweep``) of 10,000 variants x 2,516 sessions, against the
  per-variant ``strategies.analytics`` calls it replaced (the same values, bit for bit).
* MLflow: ``log_sweep`` of 10,000 points (parent with params, metrics, the results table and
  the Sharpe heatmap as PNG and HTML; 3 children with params, metrics, equity/drawdown plots,
  daily returns and trades) into a fresh SQLite store. The first round includes importing the
  plotting libraries, as a fresh process pays. The peer is the same runs with their params,
  metrics, results table and daily returns through bare ``MlflowClient`` calls, without plots,
  trades or reproducibility tags. Target: under 5 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from collections.abc import Callable
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


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def interleaved(
    sides: dict[str, Callable[[], object]], reps: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of every side, ``reps`` rounds, the order rotating each round.

    CPU time (this process, every thread) is the steadier measure on a shared machine: other
    agents' load stretches wall time but not the work done.
    """
    names = list(sides)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            c0, t0 = time.process_time(), time.perf_counter()
            sides[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return wall, cpu


def summary(times: list[float]) -> str:
    return f"median {np.median(times):6.3f} s  range {min(times):.3f}-{max(times):.3f}"


def ratio(ours: list[float], peer: list[float]) -> str:
    per_round = np.median(np.asarray(ours) / np.asarray(peer))
    return (
        f"{np.median(ours) / np.median(peer) - 1:+.0%} (ratio of medians), "
        f"{per_round - 1:+.0%} (median of per-round ratios)"
    )


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


def bench_general_path(data: CloseMatrix, reps: int) -> None:
    fam = family("ma_crossover")
    pts = fam.grid()[:60]
    spec = SweepSpec("ma_crossover", pts)
    bare = SweepSpec("ma_crossover", pts, verify=False)
    evaluate_chunk(spec, pts[:2], data)  # warm-up (numba compile)
    raw_vectorbt(spec, data)
    n = len(pts) * len(data.symbols) * len(data.sessions)
    print(
        f"general sweep path, {len(pts)} points x {len(data.symbols)} symbols x "
        f"{len(data.sessions)} bars, one process, {reps} interleaved rounds ({load()})"
    )
    wall, cpu = interleaved(
        {
            "raw": lambda: raw_vectorbt(spec, data),
            "bare": lambda: evaluate_chunk(bare, pts, data),
            "verify": lambda: evaluate_chunk(spec, pts, data),
        },
        reps,
    )
    for label, t in (("wall", wall), ("CPU", cpu)):
        print(
            f"  {label}: raw vectorbt (signals, simulation, value, returns, trades) "
            f"{summary(t['raw'])}  {n / np.median(t['raw']) / 1e6:5.2f} M combo-bars/s"
        )
        print(f"  {label}: ours, metrics only (verify=False)        {summary(t['bare'])}")
        print(f"        overhead {ratio(t['bare'], t['raw'])}  (target <= +10%)")
        print(f"  {label}: ours + fast-path re-simulation (default) {summary(t['verify'])}")
        print(f"        overhead {ratio(t['verify'], t['raw'])}  (target <= +10%)")
    print(f"  ({load()})")


def sweep_rows(data: CloseMatrix, n: int) -> pl.DataFrame:
    """A finished ``n``-point sweep's results (before significance): 200 distinct return series
    cycled over the points, so the variants' Sharpe ratios vary as a real sweep's do."""
    rng = np.random.default_rng(0)
    series = [
        rng.normal(rng.uniform(-2e-4, 8e-4), rng.uniform(0.005, 0.02), len(data.sessions))
        for _ in range(200)
    ]
    fast = rng.integers(1, 100, n)
    return pl.DataFrame(
        {
            "params": [f'{{"fast": {f}, "slow": {f + 1 + i % 150}}}' for i, f in enumerate(fast)],
            "sharpe_ratio": rng.normal(0.5, 0.4, n),
            "total_return": rng.normal(0.1, 0.2, n),
            "trades": rng.integers(1, 50, n),
            "fastpath_abs_diff": np.zeros(n),
            "error": [None] * n,
            "returns": [series[i % len(series)].tolist() for i in range(n)],
        }
    )


def bench_significance(rows: pl.DataFrame, reps: int) -> pl.DataFrame:
    """PSR/DSR of every variant: ``add_significance`` vs the per-variant analytics calls."""
    from alpaca_improved_pipelines.backtesting import significance

    returns = rows.get_column("returns")
    print(f"significance (PSR, DSR) of {rows.height:,} variants, {reps} interleaved rounds")
    wall, cpu = interleaved(
        {
            "ours": lambda: add_significance(rows, rows.height),
            "rows": lambda: significance._row_by_row(returns, rows.height),
        },
        reps,
    )
    print(f"  ours (blocks of the returns matrix)          {summary(wall['ours'])}")
    print(f"  per-variant strategies.analytics calls       {summary(wall['rows'])}")
    print(
        f"  {np.median(wall['rows']) / np.median(wall['ours']):.0f}x faster (medians; CPU "
        f"{np.median(cpu['ours']):.2f} s vs {np.median(cpu['rows']):.2f} s)  ({load()})"
    )
    return add_significance(rows, rows.height)


def ours_mlflow(rows: pl.DataFrame, data: CloseMatrix) -> float:
    """Seconds to log the sweep through ``log_sweep`` (store creation left out)."""
    spec = SweepSpec("ma_crossover", [{}] * rows.height)
    with tempfile.TemporaryDirectory() as tmp:
        tracker = Tracker(Path(tmp))
        tracker.experiment_id("ma_crossover")  # store creation is not part of the sweep
        tags = RunTags("bench", "ma_crossover_sweep", data.partition_range, data.data_versions)
        t0 = time.perf_counter()
        parent = tracker.start_run("ma_crossover", "bench", "sweep", tags)
        log_sweep(tracker, parent, spec, rows, data, tags, top_k=3)
        return time.perf_counter() - t0


def bare_mlflow(rows: pl.DataFrame, data: CloseMatrix) -> float:
    """Seconds to log the same runs, params, metrics, results table and daily returns through
    bare ``MlflowClient`` calls (store creation left out)."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
        exp = client.create_experiment("ma_crossover", artifact_location=Path(tmp).as_uri())
        t0 = time.perf_counter()
        parent = client.create_run(exp, run_name="bench").info.run_id
        metrics = {"n_trials": float(rows.height), "best_sharpe_ratio": 1.0, "best_dsr": 0.5}
        client.log_batch(
            parent,
            metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
            params=[Param("family", "ma_crossover"), Param("points", str(rows.height))],
        )
        table = Path(tmp) / "results.parquet"
        rows.drop("returns").write_parquet(table)
        client.log_artifact(parent, str(table))
        best = rows.sort("sharpe_ratio", descending=True).head(3)
        for rank, row in enumerate(best.iter_rows(named=True), start=1):
            child = client.create_run(
                exp, run_name=f"#{rank}", tags={"mlflow.parentRunId": parent}
            ).info.run_id
            client.log_batch(
                child,
                metrics=[Metric("sharpe_ratio", row["sharpe_ratio"], 0, 0)],
                params=[Param(k, str(v)) for k, v in json.loads(row["params"]).items()],
            )
            daily = Path(tmp) / "daily_returns.parquet"
            pl.DataFrame({"session": data.sessions, "return": row["returns"]}).write_parquet(daily)
            client.log_artifact(child, str(daily))
            client.set_terminated(child)
        client.set_terminated(parent)
        return time.perf_counter() - t0


def bench_mlflow(data: CloseMatrix, rows: pl.DataFrame, reps: int) -> None:
    n = rows.height
    print(f"MLflow: a {n:,}-point sweep, {reps} interleaved rounds ({load()})")
    t: dict[str, list[float]] = {"ours": [], "bare": []}
    for r in range(reps):
        for side in ("ours", "bare") if r % 2 == 0 else ("bare", "ours"):
            t[side].append((ours_mlflow if side == "ours" else bare_mlflow)(rows, data))
    cold, warm = t["ours"][0], t["ours"][1:]
    print(
        f"  ours (parent: results table + heatmap; 3 children: plots, returns, trades) "
        f"first {cold:.2f} s (imports matplotlib/plotly), then {summary(warm)}  (target < 5 s)"
    )
    print(f"  bare MlflowClient: same runs, metrics, tables; no plots {summary(t['bare'])}")
    print(
        f"  ours / bare: {np.median(t['ours']) / np.median(t['bare']):.1f}x (medians, first "
        f"round included); plots are the difference  ({load()})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=9, help="rounds of the sweep-path benchmark")
    parser.add_argument("--mlflow-reps", type=int, default=5, help="rounds of the MLflow one")
    parser.add_argument(
        "--significance-reps", type=int, default=2, help="rounds of PSR/DSR (~15 s each)"
    )
    args = parser.parse_args()
    data = closes()
    bench_general_path(data, args.reps)
    rows = bench_significance(sweep_rows(data, 10_000), args.significance_reps)
    bench_mlflow(data, rows, args.mlflow_reps)


if __name__ == "__main__":
    main()
