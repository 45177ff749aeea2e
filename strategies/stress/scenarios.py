"""Scenario P&L of a :class:`StressBook` by full Black-Scholes-Merton revaluation.

A scenario moves each underlying's spot by a factor, each underlying's implied volatility by
absolute vol points, tilts the smile (``skew_tilt`` vol points per 1.00 of log-moneyness
``ln(K / S0)``, so a negative tilt richens puts and cheapens calls) and rolls the calendar forward
(``days``; an option whose expiry falls inside the horizon is worth its intrinsic value at the
shocked spot). Every leg is repriced with :func:`strategies.pricing.black_scholes.forward_price`,
the kernel behind :func:`strategies.pricing.bs_price`, so the stressed values are the pricing
library's values; the P&L is ``units x (stressed - current model value)`` plus the stock legs'
``qty x dS``. Shocked vols are floored at 0 (a zero vol values the discounted forward intrinsic).

One numba kernel runs every scenario set (grid, list, historical path): scenarios in parallel,
legs in a fixed order inside each, so results do not depend on the thread count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from strategies.pricing._inputs import launch
from strategies.pricing.black_scholes import bsm_price_scalar, forward_price
from strategies.stress.book import DAYS_PER_YEAR, StressBook

MIN_PARALLEL = 16  # scenarios; a scenario over a real book costs more than a thread wake-up
STANDARD_SPOT_SHOCKS = (-0.10, -0.05, 0.0, 0.05, 0.10)
STANDARD_VOL_POINTS = (-10.0, 0.0, 10.0)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One market move applied to every underlying alike.

    Attributes:
        spot_shock: Relative spot move (-0.10 = down 10%).
        vol_points: Absolute implied-vol move in vol points (5 = +0.05 of vol).
        skew_tilt: Vol points added per 1.00 of log-moneyness ``ln(K / S0)``.
        days: Calendar days forward.
    """

    spot_shock: float = 0.0
    vol_points: float = 0.0
    skew_tilt: float = 0.0
    days: float = 0.0

    def __post_init__(self) -> None:
        if not self.spot_shock > -1.0 or not np.isfinite(self.spot_shock):
            raise ValueError(f"spot_shock must be a finite move above -100%, got {self.spot_shock}")
        for name in ("vol_points", "skew_tilt", "days"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")
        if self.days < 0:
            raise ValueError(f"days must be >= 0 (calendar days forward), got {self.days}")


@dataclass(frozen=True, slots=True)
class StressGrid:
    """P&L over spot shocks (rows) x vol shocks (columns); ``pnl[i, j]`` for ``spot_shocks[i]``
    and ``vol_points[j]``."""

    spot_shocks: np.ndarray
    vol_points: np.ndarray
    pnl: np.ndarray
    skew_tilt: float = 0.0
    days: float = 0.0

    @property
    def worst(self) -> tuple[float, float, float]:
        """``(pnl, spot_shock, vol_points)`` of the worst cell."""
        i, j = np.unravel_index(int(np.argmin(self.pnl)), self.pnl.shape)
        return float(self.pnl[i, j]), float(self.spot_shocks[i]), float(self.vol_points[j])


@njit(cache=True, nogil=True, error_model="numpy")
def _scenario(n, spot_mult, vol_shift, tilt, horizon, book, disc, base):
    spot, und, call, strike, iv, units, ln_m, stock_und, stock_qty = book
    sqrt_t, dq, dr = disc
    h = horizon[n]
    total = 0.0
    for k in range(strike.size):
        u = und[k]
        sigma = max(iv[k] + vol_shift[n, u] + tilt[n] * ln_m[k], 0.0)
        s = spot[u] * spot_mult[n, u]
        value = forward_price(s * dq[h, k], strike[k] * dr[h, k], sigma * sqrt_t[h, k], call[k])
        total += units[k] * (value - base[k])
    for j in range(stock_qty.size):
        u = stock_und[j]
        total += stock_qty[j] * spot[u] * (spot_mult[n, u] - 1.0)
    return total


@njit(parallel=True, cache=True, error_model="numpy")
def _run_par(spot_mult, vol_shift, tilt, horizon, book, disc, base, out):
    for n in prange(out.size):
        out[n] = _scenario(n, spot_mult, vol_shift, tilt, horizon, book, disc, base)


@njit(cache=True, error_model="numpy")
def _run_ser(spot_mult, vol_shift, tilt, horizon, book, disc, base, out):
    for n in range(out.size):
        out[n] = _scenario(n, spot_mult, vol_shift, tilt, horizon, book, disc, base)


@njit(cache=True, error_model="numpy")
def _discounts(t, rate, div, horizons):
    """sqrt(T'), e^{-qT'}, e^{-rT'} per horizon and leg, ``T' = max(T - h, 0)``; computed by
    numba as :func:`bsm_price_scalar` does (numpy's SIMD exp can differ by an ulp), so a
    scenario that moves nothing reprices every leg to the bit."""
    shape = (horizons.size, t.size)
    sqrt_t, dq, dr = np.empty(shape), np.empty(shape), np.empty(shape)
    for h in range(horizons.size):
        for k in range(t.size):
            t_new = max(t[k] - horizons[h], 0.0) if horizons[h] > 0.0 else t[k]
            sqrt_t[h, k] = math.sqrt(t_new)
            dq[h, k] = math.exp(-div[k] * t_new)
            dr[h, k] = math.exp(-rate[k] * t_new)
    return sqrt_t, dq, dr


@njit(cache=True, error_model="numpy")
def _base_values(spot, und, call, strike, t, iv, rate, div):
    out = np.empty(strike.size)
    for k in range(strike.size):
        out[k] = bsm_price_scalar(spot[und[k]], strike[k], t[k], rate[k], div[k], iv[k], call[k])
    return out


def base_values(book: StressBook) -> np.ndarray:
    """Model value per share of each option leg now (what every scenario is measured against)."""
    b = book
    return _base_values(b.spot, b.und, b.is_call, b.strike, b.t, b.iv, b.rate, b.div)


def revalue(
    book: StressBook,
    spot_mult: np.ndarray,
    vol_points: np.ndarray,
    skew_tilt: np.ndarray,
    days: np.ndarray,
) -> np.ndarray:
    """P&L of ``book`` under ``n`` scenarios given per underlying.

    Args:
        book: The book.
        spot_mult: ``(n, n_underlyings)`` spot factors (1.05 = up 5%).
        vol_points: ``(n, n_underlyings)`` implied-vol moves in vol points.
        skew_tilt: ``(n,)`` vol points per 1.00 of ``ln(K / S0)``.
        days: ``(n,)`` calendar days forward (>= 0).

    Returns:
        ``(n,)`` P&L in $ (the same units as ``qty x multiplier x price``).
    """
    n_und = book.spot.size
    mult = np.ascontiguousarray(np.broadcast_to(spot_mult, (len(days), n_und)), dtype=np.float64)
    if not (np.isfinite(mult).all() and (mult > 0).all()):
        raise ValueError("spot factors must be finite and > 0 (a shock above -100%)")
    shift = np.ascontiguousarray(np.broadcast_to(vol_points, mult.shape), dtype=np.float64) / 100
    tilt = np.ascontiguousarray(np.broadcast_to(skew_tilt, (mult.shape[0],)), dtype=np.float64)
    horizons, horizon = np.unique(np.asarray(days, dtype=np.float64), return_inverse=True)
    if not (np.isfinite(horizons).all() and (horizons >= 0).all()):
        raise ValueError(f"days forward must be finite and >= 0, got {horizons.tolist()}")
    disc = _discounts(book.t, book.rate, book.div, horizons / DAYS_PER_YEAR)
    ln_m = np.log(book.strike / book.spot[book.und])
    arrays = (book.spot, book.und, book.is_call, book.strike, book.iv, book.units, ln_m,
              book.stock_und, book.stock_qty)  # fmt: skip
    out = np.empty(mult.shape[0])
    args = (mult, shift, tilt / 100, horizon.astype(np.int64), arrays, disc)
    launch(_run_par, _run_ser, out.size, MIN_PARALLEL, *args, base_values(book), out)
    return out


def scenario_pnl(book: StressBook, scenarios: Sequence[Scenario]) -> np.ndarray:
    """P&L of ``book`` under each of ``scenarios`` (every underlying moved alike)."""
    n = len(scenarios)
    spot = np.array([[1.0 + s.spot_shock] for s in scenarios]).reshape(n, 1)
    vol = np.array([[s.vol_points] for s in scenarios], dtype=np.float64).reshape(n, 1)
    tilt = np.array([s.skew_tilt for s in scenarios], dtype=np.float64)
    days = np.array([s.days for s in scenarios], dtype=np.float64)
    return revalue(book, spot, vol, tilt, days)


def stress_grid(
    book: StressBook,
    spot_shocks: Sequence[float] | np.ndarray = STANDARD_SPOT_SHOCKS,
    vol_points: Sequence[float] | np.ndarray = STANDARD_VOL_POINTS,
    *,
    skew_tilt: float = 0.0,
    days: float = 0.0,
) -> StressGrid:
    """P&L over every (spot shock, vol shock) pair, all underlyings moved alike.

    Example:
        >>> from datetime import date
        >>> from strategies.stress import OptionPosition, StressBook
        >>> call = OptionPosition("SPY", "C", 500.0, date(2024, 3, 15), qty=1, iv=0.2)
        >>> book = StressBook.build([call], {"SPY": 500.0}, as_of=date(2024, 2, 14))
        >>> grid = stress_grid(book, [-0.1, 0.0, 0.1], [-5.0, 0.0, 5.0])
        >>> float(grid.pnl[1, 1]), bool(grid.pnl[2, 1] > 0 > grid.pnl[0, 1])
        (0.0, True)
    """
    spots = np.asarray(spot_shocks, dtype=np.float64).reshape(-1)
    vols = np.asarray(vol_points, dtype=np.float64).reshape(-1)
    if not (spots.size and vols.size):
        raise ValueError("stress_grid needs at least one spot shock and one vol shock")
    mult = np.repeat(1.0 + spots, vols.size)[:, None]
    shift = np.tile(vols, spots.size)[:, None]
    n = mult.shape[0]
    pnl = revalue(book, mult, shift, np.full(n, skew_tilt), np.full(n, float(days)))
    return StressGrid(spots, vols, pnl.reshape(spots.size, vols.size), skew_tilt, float(days))
