"""A synthetic vol lake for the vol-feature tests: surface rows, daily bars and chain flows.

Frames in the lake's layouts (``vol_surface`` per-expiry rows with the per-underlying columns
repeated, ``stock_bars_1d``, ``option_chains`` with ``right``/``volume``/``open_interest``),
seeded, with IV rank nulls for a short history, as the pipeline writes them.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from strategies.backtest.synthetic import business_days, spot_path, synthetic_chains

UNDERLYINGS = ("SPY", "QQQ")


def vol_lake(
    n: int = 60, start: date = date(2023, 1, 2), seed: int = 3
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``(surface, bars, flows)`` over ``n`` weekdays for :data:`UNDERLYINGS`; QQQ has no
    surface on every fifth session (a missed materialization)."""
    rng = np.random.default_rng(seed)
    sessions = business_days(start, n)
    surface, bars, flows = [], [], []
    for k, u in enumerate(UNDERLYINGS):
        close = spot_path(n, seed + k, s0=100.0 * (k + 1))
        atm30 = 0.18 + 0.06 * np.sin(np.arange(n) / 7.0 + k) + rng.normal(0, 0.01, n)
        slope = rng.normal(0.0, 0.02, n)
        for i, s in enumerate(sessions):
            bars.append((s, u, close[i]))
            flows += [(u, s, r, float(v), float(oi)) for r, v, oi in _flow(rng)]
            if u == "QQQ" and i % 5 == 4:
                continue
            rank = None if i < 10 else float(rng.uniform())
            for expiry_offset in (7, 35, 63):  # three expiry rows, same per-underlying values
                surface.append(
                    {
                        "underlying": u,
                        "session": s,
                        "expiry": date.fromordinal(s.toordinal() + expiry_offset),
                        "atm_iv": float(atm30[i]),
                        "atm_iv_30d": float(atm30[i]),
                        "atm_iv_60d": float(atm30[i] + slope[i] / 2),
                        "atm_iv_90d": None if i == 3 else float(atm30[i] + slope[i]),
                        "rr25_30d": float(rng.normal(-0.03, 0.01)),
                        "bf25_30d": float(rng.uniform(0.002, 0.01)),
                        "iv_rank": rank,
                        "iv_percentile": None if rank is None else float(rng.uniform()),
                    }
                )
    surface_frame = pl.DataFrame(surface)
    # the per-underlying columns must repeat on each expiry row, as in the lake
    surface_frame = surface_frame.with_columns(
        pl.exclude("underlying", "session", "expiry", "atm_iv")
        .first()
        .over("underlying", "session")
    )
    bar_frame = pl.DataFrame(bars, schema=["session", "symbol", "close"], orient="row")
    bar_frame = bar_frame.with_columns(
        open=pl.col("close"), high=pl.col("close"), low=pl.col("close"), volume=pl.lit(1.0)
    )
    flow_frame = pl.DataFrame(
        flows, schema=["underlying", "session", "right", "volume", "open_interest"], orient="row"
    )
    return surface_frame, bar_frame, flow_frame


def _flow(rng: np.random.Generator) -> list[tuple[str, int, int]]:
    return [
        ("C", int(rng.integers(0, 900)), int(rng.integers(100, 5000))),
        ("C", int(rng.integers(0, 900)), int(rng.integers(100, 5000))),
        ("P", int(rng.integers(0, 900)), int(rng.integers(100, 5000))),
    ]


def spy_chains(n: int = 60, start: date = date(2023, 1, 2), seed: int = 3) -> pl.DataFrame:
    """Engine-layout SPY chains on the same spot path as :func:`vol_lake`'s SPY bars."""
    return synthetic_chains("SPY", start, n, spots=spot_path(n, seed))
