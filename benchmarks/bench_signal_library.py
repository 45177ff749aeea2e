"""Every daily indicator and signal of the library that TA-Lib also has, on a 2,520 x 500 panel
(500 symbols x 10 years), against TA-Lib's C loop column by column (prints, asserts nothing).

Run: ``.venv/bin/python benchmarks/bench_signal_library.py [--repeat N] [--cold]``.

Three groups, each case timed in interleaved rounds (the order rotates every round) and reported
as median [min-max] milliseconds:

- indicators: ``strategies.indicators.panel`` on the (bars, symbols) float64 panel, with 1
  thread (TA-Lib is single-threaded, so that is the ratio) and with numba's default thread
  count; TA-Lib gets each column as its own contiguous array, prepared outside the timing (its
  best case). ``rv_20`` has no TA-Lib function: its peer is ``np.log`` returns plus
  ``talib.STDDEV``.
- signals: each daily family's ``signals(close)`` on the panel against TA-Lib's indicators plus
  the same rule in numpy; "per column" is the families' previous path (``column_signals``
  column by column, still the base ``SignalStrategy.panel_signals``).
- frame: ``add_indicators`` on the long frame of 1.26 M bars against TA-Lib looped per symbol
  with the frame split and re-assembled (as ``bench_indicators``); "polars" is the library's
  per-symbol polars expressions (``indicator_exprs``), what ``add_indicators`` ran before.

Before timing, every panel indicator is checked against TA-Lib on the benchmark data (NaN on
the same rows, max absolute difference printed against a 1e-9 tolerance), the families' panel
signals against their per-column signals, and ``add_indicators`` against the expressions.
Numba compile time is separate: the first call in this process (a cache load when the on-disk
cache is warm) and, with ``--cold``, a fresh process with an empty cache directory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numba
import numpy as np
import polars as pl
import talib

from strategies.equity import (
    MACrossover,
    MACrossoverConfig,
    Momentum,
    MomentumConfig,
    RSIReversion,
    RSIReversionConfig,
)
from strategies.equity.signal import SignalStrategy
from strategies.indicators import (
    IndicatorConfig,
    add_indicators,
    atr,
    bollinger,
    ema,
    indicator_exprs,
    macd,
    panel,
    realized_vol,
    rsi,
    sma,
    true_range,
)

sys.path.insert(0, str(Path(__file__).parent))
from bench_indicators import talib_per_symbol  # noqa: E402

BARS, SYMBOLS, TOL = 2520, 500, 1e-9
Timed = dict[str, Callable[[], object]]


def make_panel(seed: int = 0) -> dict[str, np.ndarray]:
    """Random-walk daily high/low/close, (bars, symbols) C-contiguous float64."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.015, (BARS, SYMBOLS)), axis=0))
    spread = np.abs(rng.normal(0, 0.006, close.shape))
    return {"high": close * (1 + spread), "low": close * (1 - spread), "close": close}


def as_frame(p: dict[str, np.ndarray]) -> pl.DataFrame:
    """The panel as long bars, rows by session then symbol (the lake's order)."""
    start = dt.datetime(2015, 1, 2, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=BARS - 1)
    ts = pl.datetime_range(start, end, "1d", eager=True, time_zone="UTC")
    cols = {k: v.ravel() for k, v in p.items()} | {"open": p["close"].ravel()}
    symbols = np.tile(np.array([f"S{j:03d}" for j in range(SYMBOLS)]), BARS)
    frame = pl.DataFrame({"symbol": symbols, "ts": np.repeat(ts.to_numpy(), SYMBOLS)} | cols)
    return frame.with_columns(volume=pl.lit(1000, dtype=pl.Int64))


def indicator_cases(p: dict[str, np.ndarray]) -> list[tuple[str, Callable, Callable]]:
    """(name, ours(threads), TA-Lib on column arrays) for every shared indicator."""
    h, lo, c = p["high"], p["low"], p["close"]
    scale = math.sqrt(252 * 20 / 19)  # sample std from TA-Lib's population STDDEV
    return [
        ("SMA 20", lambda th: panel.sma(c, 20, threads=th), lambda H, L, C: talib.SMA(C, 20)),
        ("EMA 20", lambda th: panel.ema(c, 20, threads=th), lambda H, L, C: talib.EMA(C, 20)),
        ("RSI 14", lambda th: panel.rsi(c, 14, threads=th), lambda H, L, C: talib.RSI(C, 14)),
        ("MACD 12/26/9", lambda th: panel.macd(c, threads=th), lambda H, L, C: talib.MACD(C)),
        (
            "BBANDS 20/2",
            lambda th: panel.bollinger(c, 20, 2.0, threads=th),
            lambda H, L, C: talib.BBANDS(C, 20, 2.0, 2.0, talib.MA_Type.SMA),
        ),
        ("TRANGE", lambda th: panel.true_range(h, lo, c, threads=th), talib.TRANGE),
        (
            "ATR 14",
            lambda th: panel.atr(h, lo, c, 14, threads=th),
            lambda H, L, C: talib.ATR(H, L, C, 14),
        ),
        (
            "ROC 63 (ROCR-1)",
            lambda th: panel.rate_of_change(c, 63, threads=th),
            lambda H, L, C: talib.ROCR(C, 63),
        ),
        (
            "RV 20 (log+STDDEV)",
            lambda th: panel.realized_vol(c, 20, 252, threads=th),
            lambda H, L, C: talib.STDDEV(np.log(C[1:] / C[:-1]), 20) * scale,
        ),
    ]


def reference(ref: Callable, cols: list[tuple[np.ndarray, ...]]) -> Callable[[], list]:
    return lambda: [ref(*col) for col in cols]


def check_indicators(cases: list, cols: list[tuple[np.ndarray, ...]]) -> None:
    """Ours vs TA-Lib on the benchmark data: same NaN rows, max |difference| vs TOL."""
    print(f"numerical check vs TA-Lib on the benchmark data (tolerance {TOL:g} absolute):")
    for name, ours_fn, ref in cases:
        ours = ours_fn(1)
        ours = ours if isinstance(ours, tuple) else (ours,)
        worst, same_nan = 0.0, True
        for j, col in enumerate(cols):
            theirs = ref(*col)
            theirs = theirs if isinstance(theirs, tuple) else (theirs,)
            for a, b in zip(ours, theirs, strict=True):
                a = a[:, j]
                if name.startswith("ROC"):
                    b = b - 1.0
                if name.startswith("RV"):
                    b = np.r_[np.nan, b]
                same_nan &= bool(np.array_equal(np.isnan(a), np.isnan(b)))
                m = ~np.isnan(b)
                worst = max(worst, float(np.max(np.abs(a[m] - b[m]))))
        verdict = "OK" if same_nan and worst <= TOL else "MISMATCH"
        print(
            f"  {name:<20} max |ours - TA-Lib| = {worst:.2e}  NaN rows equal: {same_nan}  {verdict}"
        )


def signal_cases(
    p: dict[str, np.ndarray], cols: list
) -> list[tuple[str, SignalStrategy, Callable]]:
    """(name, family instance, TA-Lib indicators + the same rule in numpy)."""
    close_t = [col[2] for col in cols]

    def ma() -> list:
        out = []
        for x in close_t:
            f, s = talib.SMA(x, 10), talib.SMA(x, 50)
            out.append(((f[1:] > s[1:]) & (f[:-1] <= s[:-1]), (f[1:] < s[1:]) & (f[:-1] >= s[:-1])))
        return out

    def rsi() -> list:
        return [(r < 30, r > 70) for r in (talib.RSI(x, 14) for x in close_t)]

    def mom() -> list:
        out = []
        for x in close_t:
            roc, trend = talib.ROCP(x, 63), talib.SMA(x, 200)
            out.append(((roc > 0.0) & (x > trend), (roc < -0.02) | (x < trend)))
        return out

    return [
        ("ma_crossover 10/50", MACrossover(MACrossoverConfig(fast=10, slow=50)), ma),
        ("rsi_reversion 14", RSIReversion(RSIReversionConfig(window=14)), rsi),
        ("momentum 63/200", Momentum(MomentumConfig(lookback=63, trend=200)), mom),
    ]


def interleaved(cases: dict[str, Timed], repeat: int) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per (case, side), rounds interleaved, side order rotating each round."""
    times: dict[str, dict[str, list[float]]] = {
        c: {s: [] for s in sides} for c, sides in cases.items()
    }
    for r in range(repeat):
        for case, sides in cases.items():
            names = list(sides)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                t0 = time.perf_counter()
                sides[name]()
                times[case][name].append((time.perf_counter() - t0) * 1e3)
    return times


def fmt(ms: list[float]) -> str:
    return f"{np.median(ms):8.2f} [{min(ms):.2f}-{max(ms):.2f}]"


def report(title: str, times: dict[str, dict[str, list[float]]], peer: str) -> None:
    print(f"\n{title} (ms, median [min-max]; ratio = median / median {peer})")
    totals: dict[str, float] = {}
    for case, sides in times.items():
        base = float(np.median(sides[peer]))
        cells = []
        for side, ms in sides.items():
            med = float(np.median(ms))
            totals[side] = totals.get(side, 0.0) + med
            ratio = "" if side == peer else f" = {med / base:5.2f}x"
            cells.append(f"{side} {fmt(ms)}{ratio}")
        print(f"  {case:<20} " + " | ".join(cells))
    base = totals[peer]
    print(
        "  TOTAL                "
        + " | ".join(
            f"{s} {v:8.2f}" + ("" if s == peer else f" = {v / base:5.2f}x")
            for s, v in totals.items()
        )
    )


def first_calls(p: dict[str, np.ndarray]) -> float:
    """Seconds for the first call of every kernel on a tiny panel (compile or cache load)."""
    tiny = {k: v[:300, :3].copy() for k, v in p.items()}
    t0 = time.perf_counter()
    for _, fn, _ in indicator_cases(tiny):
        fn(1)
    for _, strategy, _ in signal_cases(tiny, []):
        strategy.signals(tiny["close"])
    add_indicators(as_frame_small(tiny))
    return time.perf_counter() - t0


def as_frame_small(p: dict[str, np.ndarray]) -> pl.DataFrame:
    n, k = p["close"].shape
    ts = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = {c: v.ravel() for c, v in p.items()}
    return pl.DataFrame({"symbol": np.tile(np.array(["A", "B", "C"][:k]), n), "ts": ts} | cols)


def cold_compile() -> float:
    """Seconds for a fresh process with an empty numba cache to make the first calls."""
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import bench_signal_library as b; "
        "print(b.first_calls(b.make_panel()))"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = os.environ | {"NUMBA_CACHE_DIR": cache}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
    return float(out.stdout.strip().splitlines()[-1])


def polars_before(frame: pl.DataFrame) -> dict[str, Callable[[], object]]:
    """The same indicators as per-symbol polars expressions on the long frame (the library's
    only form before the panel kernels; ROC had none)."""
    exprs: dict[str, list[pl.Expr]] = {
        "SMA 20": [sma("close", 20)],
        "EMA 20": [ema("close", 20)],
        "RSI 14": [rsi("close", 14)],
        "MACD 12/26/9": list(macd("close")),
        "BBANDS 20/2": list(bollinger("close", 20, 2.0)),
        "TRANGE": [true_range()],
        "ATR 14": [atr(14)],
        "RV 20 (log+STDDEV)": [realized_vol("close", 20)],
    }
    return {k: partial(collect, frame, e) for k, e in exprs.items()}


def collect(frame: pl.DataFrame, exprs: list[pl.Expr]) -> pl.DataFrame:
    """``exprs`` added to ``frame`` lazily (shared sub-expressions computed once)."""
    return frame.lazy().with_columns(exprs).collect()


def check_signals_and_frame(p: dict[str, np.ndarray], frame: pl.DataFrame, sigs: list) -> None:
    close = p["close"]
    for name, strategy, _ in sigs:
        ours = strategy.signals(close)
        before = SignalStrategy.panel_signals(strategy, close)
        same = all(np.array_equal(a, b) for a, b in zip(ours, before, strict=True))
        print(f"  {name:<20} panel signals == per-column signals: {same}")
    config = IndicatorConfig()
    ours = add_indicators(frame, config)
    ref = frame.lazy().with_columns(indicator_exprs(config)).collect()
    worst = max(np.nanmax(np.abs(ours[c].to_numpy() - ref[c].to_numpy())) for c in config.columns())
    nulls = all((ours[c].is_null() == ref[c].is_null()).all() for c in config.columns())
    print(f"  add_indicators vs polars expressions: max |diff| {worst:.2e}, nulls equal: {nulls}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--cold", action="store_true", help="also time a cold numba compile")
    parser.add_argument(
        "--before", action="store_true", help="also time the per-symbol polars expressions"
    )
    args = parser.parse_args()
    threads = numba.get_num_threads()
    print(
        f"TA-Lib {talib.__version__} (C {talib.__ta_version__.decode().split()[0]}), numba "
        f"{numba.__version__} ({threads} threads), numpy {np.__version__}, polars {pl.__version__}"
    )
    print(f"panel {BARS} bars x {SYMBOLS} symbols; load average at start {os.getloadavg()}")
    p = make_panel()
    cols = [
        tuple(np.ascontiguousarray(p[k][:, j]) for k in ("high", "low", "close"))
        for j in range(SYMBOLS)
    ]
    print(f"first calls (numba compile or cache load): {first_calls(p):.2f} s")
    frame = as_frame(p)
    cases = indicator_cases(p)
    sigs = signal_cases(p, cols)
    check_indicators(cases, cols)
    check_signals_and_frame(p, frame, sigs)

    before = polars_before(frame) if args.before else {}
    ind: dict[str, Timed] = {}
    for name, fn, ref in cases:
        ind[name] = {"TA-Lib": reference(ref, cols), "ours 1 thread": partial(fn, 1)}
        ind[name][f"ours {threads} threads"] = partial(fn, None)
        if name in before:
            ind[name]["polars (before)"] = before[name]
    close = p["close"]
    sig: dict[str, Timed] = {
        name: {
            "TA-Lib": ref,
            "ours": partial(strategy.signals, close),
            "per column (before)": partial(SignalStrategy.panel_signals, strategy, close),
        }
        for name, strategy, ref in sigs
    }
    fr: dict[str, Timed] = {
        "add_indicators": {
            "TA-Lib loop": lambda: talib_per_symbol(frame, 252.0),
            "ours 1 thread": partial(add_indicators, frame),
            f"ours {threads} threads": partial(add_indicators, frame, threads=None),
            "polars (before)": partial(collect, frame, indicator_exprs(IndicatorConfig())),
        }
    }
    report("indicators", interleaved(ind, args.repeat), "TA-Lib")
    report("signals (single-threaded)", interleaved(sig, args.repeat), "TA-Lib")
    report(
        "frame of 1.26 M bars, default IndicatorConfig",
        interleaved(fr, max(3, args.repeat // 2)),
        "TA-Lib loop",
    )
    print(f"\nload average at end {os.getloadavg()}")
    if args.cold:
        print(f"cold numba compile (empty cache, fresh process): {cold_compile():.2f} s")


if __name__ == "__main__":
    main()
