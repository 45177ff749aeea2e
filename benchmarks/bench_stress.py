"""Benchmark (issue 14): scenario grid, 21 spot x 11 vol points over a 1,000-contract book.

Compares ``strategies.stress.stress_grid`` (full revaluation, one numba kernel) with two peers on
the same book: py_vollib_vectorized pricing every (scenario, leg) pair in one vectorized call,
and a straightforward QuantLib loop (AnalyticEuropeanEngine per contract, re-quoting spot and
vol per scenario) on a subsample of contracts, scaled to the whole book. Prints the times, the
largest disagreement and the ratios; asserts nothing. Target: our grid under 50 ms.

Usage:
    python benchmarks/bench_stress.py [--contracts 1000] [--ql-contracts 50] [--repeat 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strategies.stress import StressBook, base_values, stress_grid  # noqa: E402

TARGET_MS = 50.0
SPOTS = {"AAA": 100.0, "BBB": 250.0, "CCC": 40.0, "DDD": 480.0, "EEE": 15.0}
RATE, DIV = 0.04, 0.01


def make_book(n: int, seed: int) -> StressBook:
    """``n`` option legs over five underlyings, 1-400 days, strikes 70-130% of spot."""
    rng = np.random.default_rng(seed)
    und = rng.choice(list(SPOTS), n)
    spot = np.array([SPOTS[u] for u in und])
    return StressBook.from_arrays(
        SPOTS, und, rng.random(n) < 0.5, np.round(spot * rng.uniform(0.7, 1.3, n), 1),
        rng.integers(1, 401, n) / 365.0, rng.uniform(0.1, 0.8, n),
        rng.integers(-10, 11, n) * 100.0, rate=RATE, div=DIV, stock={"AAA": -500.0},
    )  # fmt: skip


def best_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best-of-``repeat`` milliseconds after one warm-up, and the last result."""
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3, out


def vollib_grid(book: StressBook, spots: np.ndarray, vols: np.ndarray) -> np.ndarray:
    """The grid through py_vollib_vectorized's BSM price (one call over scenarios x legs)."""
    from py_vollib_vectorized import vectorized_black_scholes_merton

    s0 = book.spot[book.und]
    mult = np.repeat(1.0 + spots, vols.size)[:, None]
    shift = np.tile(vols, spots.size)[:, None] / 100
    shape = (mult.shape[0], book.n_options)
    flags = np.broadcast_to(np.where(book.is_call, "c", "p"), shape).ravel()
    price = vectorized_black_scholes_merton(
        flags, np.broadcast_to(s0 * mult, shape).ravel(),
        np.broadcast_to(book.strike, shape).ravel(), np.broadcast_to(book.t, shape).ravel(),
        RATE, np.maximum(book.iv + shift, 0.0).ravel(), DIV, return_as="numpy",
    ).reshape(shape)  # fmt: skip
    pnl = (price - base_values(book)) @ book.units
    stock = book.stock_qty @ book.spot[book.stock_und]
    return (pnl + stock * (mult[:, 0] - 1.0)).reshape(spots.size, vols.size)


def quantlib_grid(book: StressBook, spots: np.ndarray, vols: np.ndarray, n: int) -> np.ndarray:
    """Option P&L of the first ``n`` legs by a per-contract QuantLib loop."""
    import QuantLib as ql

    today = ql.Date(15, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    rate = ql.YieldTermStructureHandle(ql.FlatForward(today, RATE, dc))
    div = ql.YieldTermStructureHandle(ql.FlatForward(today, DIV, dc))
    out = np.zeros((spots.size, vols.size))
    for k in range(n):
        s0 = float(book.spot[book.und[k]])
        spot, vol = ql.SimpleQuote(s0), ql.SimpleQuote(float(book.iv[k]))
        process = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(spot), div, rate,
            ql.BlackVolTermStructureHandle(
                ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vol), dc)),
        )  # fmt: skip
        right = ql.Option.Call if book.is_call[k] else ql.Option.Put
        expiry = today + int(round(book.t[k] * 365.0))
        option = ql.VanillaOption(
            ql.PlainVanillaPayoff(right, float(book.strike[k])), ql.EuropeanExercise(expiry)
        )
        option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
        base = option.NPV()
        for i, ds in enumerate(spots):
            spot.setValue(s0 * (1.0 + ds))
            for j, dv in enumerate(vols):
                vol.setValue(max(float(book.iv[k]) + dv / 100, 0.0))
                out[i, j] += book.units[k] * (option.NPV() - base)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contracts", type=int, default=1000)
    parser.add_argument("--ql-contracts", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    book = make_book(args.contracts, seed=0)
    spots, vols = np.linspace(-0.2, 0.2, 21), np.linspace(-10.0, 10.0, 11)
    cells = spots.size * vols.size
    print(f"grid {spots.size} spot x {vols.size} vol over {args.contracts:,} contracts "
          f"({cells * args.contracts:,} revaluations)")  # fmt: skip
    t0 = time.perf_counter()
    stress_grid(book, spots, vols)
    print(f"  ours, first call (numba cache load): {(time.perf_counter() - t0) * 1e3:8.1f} ms")
    ours_ms, ours = best_ms(lambda: stress_grid(book, spots, vols).pnl, args.repeat)
    status = "OK" if ours_ms < TARGET_MS else "OVER"
    print(f"  ours: stress_grid (numba)          {ours_ms:8.1f} ms   target < {TARGET_MS:.0f} ms"
          f" {status}")  # fmt: skip
    vl_ms, vl = best_ms(lambda: vollib_grid(book, spots, vols), max(1, args.repeat // 2))
    gross = float(np.abs(book.units * base_values(book)).sum())
    print(f"  py_vollib_vectorized               {vl_ms:8.1f} ms   ratio {vl_ms / ours_ms:6.1f}x"
          f"   max |diff| / gross {np.abs(vl - ours).max() / gross:.1e}")  # fmt: skip
    n = min(args.ql_contracts, args.contracts)
    t = time.perf_counter()
    ql_part = quantlib_grid(book, spots, vols, n)
    ql_ms = (time.perf_counter() - t) * 1e3 * args.contracts / n
    sub = StressBook.from_arrays(
        SPOTS, np.array(book.underlyings)[book.und[:n]], book.is_call[:n], book.strike[:n],
        book.t[:n], book.iv[:n], book.units[:n], rate=RATE, div=DIV,
    )  # fmt: skip
    sub_gross = float(np.abs(sub.units * base_values(sub)).sum())
    diff = np.abs(stress_grid(sub, spots, vols).pnl - ql_part).max() / sub_gross
    print(f"  QuantLib loop ({n} contracts, scaled) {ql_ms:8.1f} ms   ratio "
          f"{ql_ms / ours_ms:6.1f}x   max |diff| / gross {diff:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
