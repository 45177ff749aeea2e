"""Deterministic synthetic option chain archives (for tests and benchmarks of the engine).

A seeded GBM path with volatility clustering, Friday expiries up to ``max_dte`` days out, strikes
every ``strike_step`` around the spot, a skewed smile, spreads widening away from the money, and
Black-Scholes mids and Greeks (vega per vol point, theta per calendar day). Vectorized: ten years
of ~1,100 contracts a day take a couple of seconds, mostly formatting OCC symbols.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
from scipy.special import ndtr

from strategies.models import CHAIN_COLUMNS

_SQRT_2PI = np.sqrt(2.0 * np.pi)


def business_days(start: date, count: int) -> list[date]:
    """``count`` weekdays from ``start`` (holidays are not modelled)."""
    out: list[date] = []
    day = start
    while len(out) < count:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def spot_path(
    n: int, seed: int, s0: float = 100.0, vol: float = 0.2, drift: float = 0.08
) -> np.ndarray:
    """Daily closes of a GBM whose log-volatility mean-reverts (AR(1), seeded)."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, 0.08, n)
    log_vol = np.empty(n)
    level = 0.0
    for t in range(n):  # AR(1) clustering around log(vol)
        level = 0.97 * level + shocks[t]
        log_vol[t] = level
    sigma = np.clip(vol * np.exp(log_vol), 0.05, 1.0) / np.sqrt(252)
    steps = (drift / 252 - 0.5 * sigma**2) + sigma * rng.standard_normal(n)
    steps[0] = 0.0
    return s0 * np.exp(np.cumsum(steps))


def _bs(spot, strike, t, vol, call, rate):
    sq = vol * np.sqrt(t)
    d1 = (np.log(spot / strike) + (rate + 0.5 * vol * vol) * t) / sq
    d2 = d1 - sq
    disc = np.exp(-rate * t)
    nd1 = ndtr(d1)
    pdf = np.exp(-0.5 * d1 * d1) / _SQRT_2PI
    call_px = spot * nd1 - strike * disc * ndtr(d2)
    price = np.where(call, call_px, call_px - spot + strike * disc)
    delta = np.where(call, nd1, nd1 - 1.0)
    gamma = pdf / (spot * sq)
    vega = spot * pdf * np.sqrt(t) / 100.0
    theta_call = -spot * pdf * vol / (2 * np.sqrt(t)) - rate * strike * disc * ndtr(d2)
    theta = np.where(call, theta_call, theta_call + rate * strike * disc) / 365.0
    return price, delta, gamma, vega, theta


def _grid(spot: np.ndarray, day_num: np.ndarray, step: float, each_side: int, max_dte: int):  # noqa: ANN202
    """Row arrays (day index, expiry day, strike, is_call) in session / expiry / right / strike
    order, i.e. sorted like OCC symbols."""
    to_friday = (4 - (day_num + 3) % 7) % 7  # 1970-01-01 was a Thursday: weekday = (n + 3) % 7
    n_exp = max_dte // 7 + 1
    expiry = day_num[:, None] + to_friday[:, None] + 7 * np.arange(n_exp)[None, :]
    offsets = np.arange(-each_side, each_side + 1) * step
    strikes = np.round(spot / step)[:, None] * step + offsets[None, :]
    shape = (spot.size, n_exp, 2, offsets.size)
    d_idx = np.broadcast_to(np.arange(spot.size)[:, None, None, None], shape).ravel()
    exp = np.broadcast_to(expiry[:, :, None, None], shape).ravel()
    strike = np.broadcast_to(strikes[:, None, None, :], shape).ravel()
    call = np.broadcast_to(np.array([True, False])[None, None, :, None], shape).ravel()
    keep = (strike > 0) & (exp - day_num[d_idx] <= max_dte)
    return d_idx[keep], exp[keep], strike[keep], call[keep]


def synthetic_chains(
    underlying: str = "SPY",
    start: date = date(2015, 1, 2),
    sessions: int = 252,
    seed: int = 7,
    *,
    s0: float = 100.0,
    strikes_each_side: int = 27,
    strike_step: float = 1.0,
    max_dte: int = 70,
    rate: float = 0.03,
    spots: np.ndarray | None = None,
) -> pl.DataFrame:
    """A chain archive with the :data:`strategies.models.CHAIN_COLUMNS` for ``sessions`` days.

    ``spots`` (length ``sessions``) replaces the seeded path, to script a scenario.
    """
    spot = spot_path(sessions, seed, s0) if spots is None else np.asarray(spots, dtype=np.float64)
    if spot.shape != (sessions,) or not np.all(spot > 0):
        raise ValueError(f"spots must be {sessions} positive prices")
    day_num = np.array([(d - date(1970, 1, 1)).days for d in business_days(start, sessions)])
    d_idx, exp, strike, call = _grid(spot, day_num, strike_step, strikes_each_side, max_dte)
    s = spot[d_idx]
    dte = exp - day_num[d_idx]
    t = np.maximum(dte, 0.5) / 365.0  # expiring contracts keep half a day of time value
    moneyness = np.log(strike / s)
    vol = 0.18 + 0.02 / np.sqrt(t * 12 + 0.5) - 0.25 * moneyness + 0.6 * moneyness**2
    price, delta, gamma, vega, theta = _bs(s, strike, t, vol, call, rate)
    half = np.maximum(0.01, 0.02 * price + 0.01 + 0.05 * np.abs(moneyness))
    bid = np.maximum(np.round((price - half) * 100) / 100, 0.0)
    ask = np.maximum(np.round((price + half) * 100) / 100, bid + 0.01)
    columns = {
        "underlying": pl.Series([underlying] * d_idx.size, dtype=pl.String),
        "session": pl.Series(day_num[d_idx].astype("int32")).cast(pl.Date),
        "expiry": pl.Series(exp.astype("int32")).cast(pl.Date),
        "strike": strike, "right": np.where(call, "C", "P"), "bid": bid, "ask": ask,
        "mid": (bid + ask) / 2, "underlying_price": s, "dte": dte.astype(np.int64), "iv": vol,
        "delta": delta, "gamma": gamma, "vega": vega, "theta": theta,
    }  # fmt: skip
    contract = pl.format(
        "{}{}{}{}",
        pl.col("underlying"),
        pl.col("expiry").dt.strftime("%y%m%d"),
        pl.col("right"),
        (pl.col("strike") * 1000).round(0).cast(pl.Int64).cast(pl.String).str.zfill(8),
    )
    return pl.DataFrame(columns).with_columns(contract=contract).select(CHAIN_COLUMNS)
