"""Time ``add_indicators`` against TA-Lib looped per symbol (prints, asserts nothing).

Run: ``.venv/bin/python benchmarks/bench_indicators.py [--repeat N]``.

Both sides compute the default ``IndicatorConfig`` set: SMA 20, EMA 20, RSI 14, MACD 12/26/9,
Bollinger 20/2, ATR 14 and 20-bar realized volatility (pandas rolling std on the TA-Lib side,
which has no such function). The TA-Lib side includes splitting the frame per symbol and
attaching the results, so both return the same frame.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import polars as pl
import talib

from strategies.indicators import IndicatorConfig, add_indicators


def make_bars(n_symbols: int, n_bars: int, step: dt.timedelta, seed: int = 0) -> pl.DataFrame:
    """Random-walk bars for ``n_symbols`` symbols, rows interleaved by timestamp."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2015, 1, 2, 14, 30, tzinfo=dt.UTC)
    ts = pl.datetime_range(start, start + step * (n_bars - 1), step, eager=True, time_zone="UTC")
    frames = []
    for k in range(n_symbols):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_bars)))
        spread = np.abs(rng.normal(0, 0.004, n_bars))
        frames.append(
            pl.DataFrame(
                {"symbol": f"S{k:02d}", "ts": ts, "open": close, "high": close * (1 + spread)}
                | {"low": close * (1 - spread), "close": close}
                | {"volume": rng.integers(100, 10_000, n_bars)}
            )
        )
    return pl.concat(frames).sort("ts", "symbol")


def talib_per_symbol(df: pl.DataFrame, periods_per_year: float) -> pl.DataFrame:
    """The same columns with TA-Lib (and pandas for realized vol), one symbol at a time."""
    parts = []
    for part in df.partition_by("symbol", maintain_order=True):
        h, lo, c = (part[x].to_numpy() for x in ("high", "low", "close"))
        macd, signal, hist = talib.MACD(c, 12, 26, 9)
        upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
        log_ret = np.log(pd.Series(c)).diff()
        rv = log_ret.rolling(20).std().to_numpy() * np.sqrt(periods_per_year)
        cols = {"sma_20": talib.SMA(c, 20), "ema_20": talib.EMA(c, 20), "rsi_14": talib.RSI(c, 14)}
        cols |= {"macd": macd, "macd_signal": signal, "macd_hist": hist}
        cols |= {"bb_upper_20": upper, "bb_middle_20": middle, "bb_lower_20": lower}
        cols |= {"atr_14": talib.ATR(h, lo, c, 14), "rv_20": rv}
        parts.append(part.with_columns(pl.DataFrame(cols)))
    return pl.concat(parts)


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, float]:
    """Best wall-clock and best process-CPU seconds over ``repeat`` runs."""
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def run(label: str, df: pl.DataFrame, periods_per_year: float, repeat: int) -> None:
    config = IndicatorConfig(periods_per_year=periods_per_year)
    ours, ours_cpu = best_of(repeat, lambda: add_indicators(df, config))
    ref, ref_cpu = best_of(repeat, lambda: talib_per_symbol(df, periods_per_year))
    print(
        f"{label:<28} rows={df.height:>9,}  add_indicators={ours * 1e3:7.1f} ms "
        f"(cpu {ours_cpu * 1e3:7.1f})  talib loop={ref * 1e3:7.1f} ms (cpu {ref_cpu * 1e3:7.1f})  "
        f"ratio polars/talib wall={ours / ref:5.2f}x cpu={ours_cpu / ref_cpu:5.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best-of repeats (default 3)")
    args = parser.parse_args()
    print(f"polars {pl.__version__}, TA-Lib {talib.__version__}, best of {args.repeat}")
    daily = make_bars(10, 252 * 10, dt.timedelta(days=1))
    run("10 symbols x 10 years daily", daily, 252.0, args.repeat)
    minute = make_bars(10, 252 * 390, dt.timedelta(minutes=1), seed=1)
    run("10 symbols x 1 year minute", minute, 252.0 * 390, args.repeat)


if __name__ == "__main__":
    main()
