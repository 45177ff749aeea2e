"""Leisen-Reimer binomial tree for American options with a continuous yield (numba, private).

Leisen & Reimer (1996), "Binomial models for option valuation - examining and improving
convergence", Applied Mathematical Finance 3: the up-probabilities are Peizer-Pratt (method 2)
inversions of ``N(d2)`` and ``N(d1)``, so the tree is centred on the strike and European prices
converge at O(1/n^2) without oscillation. For American exercise the error is O(1/n) but smooth
enough for two-point Richardson extrapolation between ``n/2`` and ``n`` steps, which cuts the
typical error by about 5x for 1.25x the work (see :mod:`strategies.pricing.american`).
"""

from __future__ import annotations

import math

from numba import njit

from strategies.pricing.black_scholes import bsm_price_scalar, valid_inputs


@njit(cache=True, nogil=True, error_model="numpy")
def _peizer_pratt(z: float, n: int) -> float:
    """Peizer-Pratt method-2 inversion: binomial probability matching ``N(z)`` for odd ``n``."""
    a = z / (n + 1.0 / 3.0 + 0.1 / (n + 1.0))
    half_width = 0.5 * math.sqrt(-math.expm1(-a * a * (n + 1.0 / 6.0)))
    return 0.5 + half_width if z >= 0.0 else 0.5 - half_width


@njit(cache=True, nogil=True, error_model="numpy")
def _tree_params(S, K, T, r, q, sigma, n):
    """Return ``(u, d, p)``: Leisen-Reimer, or a drift-centred CRR tree where LR degenerates."""
    dt = T / n
    growth = math.exp((r - q) * dt)
    s = sigma * math.sqrt(T)
    d1 = (math.log(S / K) + (r - q) * T) / s + 0.5 * s
    p = _peizer_pratt(d1 - s, n)
    u = growth * _peizer_pratt(d1, n) / p
    d = (growth - p * u) / (1.0 - p)
    if 0.0 < p < 1.0 and 0.0 < d < u and math.isfinite(u):
        return u, d, p
    # deep in/out of the money at tiny vol: LR probabilities round to 0 or 1
    sd = sigma * math.sqrt(dt)
    u = growth * math.exp(sd)
    d = growth * math.exp(-sd)
    return u, d, (growth - d) / (u - d)


@njit(cache=True, nogil=True, error_model="numpy")
def lr_tree(S, K, T, r, q, sigma, call, n, values, spots):
    """American value on an ``n``-step tree; ``values``/``spots`` are scratch of size ``n + 1``."""
    u, d, p = _tree_params(S, K, T, r, q, sigma, n)
    disc = math.exp(-r * T / n)
    pu = disc * p
    pd = disc * (1.0 - p)
    sign = 1.0 if call else -1.0
    spot = S * d**n
    ratio = u / d
    for j in range(n + 1):
        spots[j] = spot
        values[j] = max(sign * (spot - K), 0.0)
        spot *= ratio
    inv_d = 1.0 / d
    for i in range(n - 1, -1, -1):
        for j in range(i + 1):
            spots[j] *= inv_d
            values[j] = max(pd * values[j] + pu * values[j + 1], sign * (spots[j] - K))
    return values[0]


@njit(cache=True, nogil=True, error_model="numpy")
def zero_vol_gap(S, K, T, r, q, call):
    """Best payoff of a deterministic exercise time in ``[0, T]``, unclamped (may be < 0)."""
    sign = 1.0 if call else -1.0
    best = max(sign * (S - K), sign * (S * math.exp(-q * T) - K * math.exp(-r * T)))
    if r != q and r * q > 0.0:
        t_star = math.log(r * K / (q * S)) / (r - q)  # stationary point of S e^{-qt} - K e^{-rt}
        if 0.0 < t_star < T:
            best = max(best, sign * (S * math.exp(-q * t_star) - K * math.exp(-r * t_star)))
    return best


@njit(cache=True, nogil=True, error_model="numpy")
def zero_vol_value(S, K, T, r, q, call):
    """American value at zero volatility: the best deterministic exercise time in ``[0, T]``."""
    return max(zero_vol_gap(S, K, T, r, q, call), 0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def never_early(r, q, call):
    """True when early exercise is never optimal, so American equals European exactly."""
    return (call and q <= 0.0 and r >= 0.0) or ((not call) and r <= 0.0 and q >= 0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def american_price_scalar(S, K, T, r, q, sigma, call, steps, richardson, values, spots):
    """One American price; ``values``/``spots`` are scratch arrays of size ``steps + 1``."""
    if not valid_inputs(S, K, T, r, q, sigma):
        return math.nan
    if never_early(r, q, call):
        return bsm_price_scalar(S, K, T, r, q, sigma, call)
    if sigma * math.sqrt(T) == 0.0:
        return zero_vol_value(S, K, T, r, q, call)
    price = lr_tree(S, K, T, r, q, sigma, call, steps, values, spots)
    if richardson:
        coarse = (steps // 2) | 1  # LR needs an odd step count
        low = lr_tree(S, K, T, r, q, sigma, call, coarse, values, spots)
        price = (steps * price - coarse * low) / (steps - coarse)  # O(1/n) error removed
    european = bsm_price_scalar(S, K, T, r, q, sigma, call)
    sign = 1.0 if call else -1.0
    return max(price, european, sign * (S - K))
