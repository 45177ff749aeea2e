"""Intraday family benchmark (issue 11 item 4): sweep throughput of the VWAP-reversion family on
minute bars, our sweep path and its compiled fast path vs a plain loop of vectorbt
``from_signals`` (one portfolio per point) on the same minute grid. Prints ratios; asserts
nothing.

    python benchmarks/bench_intraday_sweep.py
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import numpy as np
import polars as pl

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.backtesting.data import MinuteMatrix
from alpaca_improved_pipelines.backtesting.families import family
from alpaca_improved_pipelines.backtesting.sweep import SweepSpec, evaluate_chunk
from alpaca_improved_pipelines.sources.synthetic_bars import minute_bars
from strategies.equity import VWAPReversion
from strategies.equity.intraday import MinutePanel

SYMBOLS = ("SPY", "AAPL", "XOM")
SESSIONS = cal.sessions_between(dt.date(2024, 7, 1), dt.date(2024, 9, 30))  # one quarter


def minutes() -> MinuteMatrix:
    bars = pl.concat([minute_bars(7, SYMBOLS, s) for s in SESSIONS])
    names = sorted(SYMBOLS)
    panel = MinutePanel.build(bars, names, [cal.session_open_close(s) for s in SESSIONS])
    return MinuteMatrix(SESSIONS, names, panel.close, {"synthetic": "seed-7"}, panel)


def vectorbt_loop(spec: SweepSpec, data: MinuteMatrix) -> None:
    """The plain way: signals and one ``from_signals`` portfolio per point."""
    import vectorbt as vbt

    fam = family(spec.family)
    for point in spec.points:
        entries, exits = fam.signals(point, data.symbols, data.panel)
        pf = vbt.Portfolio.from_signals(
            data.close,
            entries,
            exits,
            fees=spec.fees,
            slippage=spec.slippage,
            freq="1min",
            init_cash=spec.init_cash / len(data.symbols),
        )
        pf.value()
        pf.total_return()
        pf.trades.count()


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    data = minutes()
    pts = family("vwap_reversion").grid()
    spec = SweepSpec("vwap_reversion", pts)
    bare = SweepSpec("vwap_reversion", pts, verify=False)
    evaluate_chunk(spec, pts[:2], data)  # warm-up (numba compile)
    vectorbt_loop(SweepSpec("vwap_reversion", pts[:1]), data)
    t_loop = timed(lambda: vectorbt_loop(spec, data))
    t_ours = timed(lambda: evaluate_chunk(spec, pts, data))
    t_bare = timed(lambda: evaluate_chunk(bare, pts, data))
    t_fast = timed(
        lambda: VWAPReversion.sweep_fast_path(
            data.panel, pts, fees=spec.fees, slippage=spec.slippage, init_cash=spec.init_cash
        )
    )
    n = len(pts) * len(data.symbols) * data.close.shape[0]
    print(
        f"vwap_reversion sweep, {len(pts)} points x {len(data.symbols)} symbols x "
        f"{data.close.shape[0]} minute bars ({len(SESSIONS)} sessions), one process"
    )
    rows = [
        ("plain vectorbt from_signals loop (per point)", t_loop),
        ("our sweep chunk (one vectorbt run + fast-path check)", t_ours),
        ("our sweep chunk without the fast-path check", t_bare),
        ("compiled fast path alone (signals + state machine)", t_fast),
    ]
    for label, t in rows:
        print(f"  {label:55s} {t:6.2f} s {n / t / 1e6:7.2f} M combo-bars/s")
    print(f"  ratio loop / our sweep chunk:  {t_loop / t_ours:5.2f}x")
    print(f"  ratio loop / bare chunk:       {t_loop / t_bare:5.2f}x")
    print(f"  ratio loop / fast path alone:  {t_loop / t_fast:5.2f}x")
    assert np.isfinite(t_ours)


if __name__ == "__main__":
    main()
