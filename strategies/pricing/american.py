"""American options with a continuous dividend yield: prices and implied volatilities.

Method: a Leisen-Reimer binomial tree (``steps`` odd, default 101) with two-point Richardson
extrapolation against a ``steps // 2 | 1`` tree, floored at the European BSM value and the
immediate-exercise value; when early exercise is never optimal (calls with ``q <= 0 <= r``, puts
with ``r <= 0 <= q``) the closed-form European value is returned exactly.

Accuracy (default settings, S=100, moneyness 0.7-1.3, T 1 day-2 years, vol 5%-150%, measured
against a Richardson-extrapolated 2001/4001-step tree, which QuantLib's finite-difference engine
confirms): median absolute error 1.6e-4, 99th percentile 1.6e-3, worst 7.5e-3 (long-dated, very
high vol); i.e. about 1e-6, 1e-5 and 1e-4 of spot. ``steps=201`` quarters the median error for
four times the work. Discrete dividends are not modelled; use an equivalent yield.

American implied volatility is a safeguarded root search per option in numba: the European
implied volatility of the price starts it (an upper bound, as American >= European), one
early-exercise-premium correction follows (``sigma = IV_euro(price - premium(sigma))``), then
secant steps inside a bracket that bisects (or doubles) whenever a step would leave it. Three to
five tree evaluations per option are typical; 100,000 options take about half a second on two
idle cores.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from strategies.pricing import _iv_core as core
from strategies.pricing._inputs import broadcast, launch, restore
from strategies.pricing._tree import american_price_scalar, never_early, zero_vol_gap
from strategies.pricing.black_scholes import bsm_price_scalar

DEFAULT_STEPS = 101
_MAX_EVAL = 60
_XTOL = 1e-10  # absolute volatility tolerance of the root search
_MIN_PARALLEL = 16  # a tree costs microseconds, so threads pay off early


@njit(cache=True, nogil=True, error_model="numpy")
def _check_inputs(price, S, K, T, r, q, call):
    """Status of the inputs and of the price in the band ``[zero-vol value, S or K]``."""
    status = core.input_status(price, S, K, T, r, q)
    if status != core.OK:
        return status
    scale = max(S, K, S * math.exp(-q * T), K * math.exp(-r * T))
    return core.bound_status(price, zero_vol_gap(S, K, T, r, q, call), S if call else K, scale)


@njit(cache=True, nogil=True, error_model="numpy")
def _american_iv_scalar(price, S, K, T, r, q, call, steps, richardson, values, spots):
    """American implied volatility of one option as ``(sigma, status)``."""
    if never_early(r, q, call):
        return core.iv_scalar(price, S, K, T, r, q, call)
    status = _check_inputs(price, S, K, T, r, q, call)
    if status == core.AT_INTRINSIC:
        return 0.0, status  # the zero-vol limit: american_price(sigma=0) == the bound
    if status != core.OK:
        return math.nan, status
    lo, hi = 0.0, math.inf
    x, euro_status = core.iv_scalar(price, S, K, T, r, q, call)
    if euro_status != core.OK:
        x = 0.5
    x_prev = f_prev = math.nan
    for it in range(_MAX_EVAL):
        value = american_price_scalar(S, K, T, r, q, x, call, steps, richardson, values, spots)
        fx = value - price
        if fx == 0.0:
            return x, core.OK
        if fx < 0.0:
            lo = x
        else:
            hi = x
        if it == 0:  # remove the early-exercise premium and invert the European price
            premium = value - bsm_price_scalar(S, K, T, r, q, x, call)
            cand, _ = core.iv_scalar(price - premium, S, K, T, r, q, call)
        else:
            cand = x - fx * (x - x_prev) / (fx - f_prev)  # secant
        if not (lo < cand < hi):  # also catches NaN
            cand = 2.0 * x if math.isinf(hi) else 0.5 * (lo + hi)
        if abs(cand - x) <= _XTOL or hi - lo <= _XTOL:
            return cand, core.OK
        x_prev, f_prev, x = x, fx, cand
    return math.nan, core.NO_CONVERGENCE


@njit(cache=True, nogil=True, error_model="numpy")
def _price_one(S, K, T, r, q, sigma, call, steps, richardson, out, i):
    values = np.empty(steps + 1)
    spots = np.empty(steps + 1)
    out[i] = american_price_scalar(
        S[i], K[i], T[i], r[i], q[i], sigma[i], call[i], steps, richardson, values, spots
    )


@njit(cache=True, nogil=True, error_model="numpy")
def _iv_one(price, S, K, T, r, q, call, steps, richardson, iv, status, i):
    values = np.empty(steps + 1)
    spots = np.empty(steps + 1)
    iv[i], status[i] = _american_iv_scalar(
        price[i], S[i], K[i], T[i], r[i], q[i], call[i], steps, richardson, values, spots
    )


# Parallel and serial twins, as in black_scholes.py.
@njit(parallel=True, cache=True, error_model="numpy")
def _price_par(S, K, T, r, q, sigma, call, steps, richardson, out):
    for i in prange(out.size):
        _price_one(S, K, T, r, q, sigma, call, steps, richardson, out, i)


@njit(cache=True, error_model="numpy")
def _price_ser(S, K, T, r, q, sigma, call, steps, richardson, out):
    for i in range(out.size):
        _price_one(S, K, T, r, q, sigma, call, steps, richardson, out, i)


@njit(parallel=True, cache=True, error_model="numpy")
def _iv_par(price, S, K, T, r, q, call, steps, richardson, iv, status):
    for i in prange(iv.size):
        _iv_one(price, S, K, T, r, q, call, steps, richardson, iv, status, i)


@njit(cache=True, error_model="numpy")
def _iv_ser(price, S, K, T, r, q, call, steps, richardson, iv, status):
    for i in range(iv.size):
        _iv_one(price, S, K, T, r, q, call, steps, richardson, iv, status, i)


def _check_steps(steps: int) -> int:
    if int(steps) != steps or steps < 5 or steps % 2 == 0:
        raise ValueError(f"steps must be an odd integer >= 5 (Leisen-Reimer), got {steps!r}")
    return int(steps)


def american_price(
    S: Any,
    K: Any,
    T: Any,
    r: Any,
    sigma: Any,
    q: Any = 0.0,
    is_call: Any = True,
    *,
    steps: int = DEFAULT_STEPS,
    richardson: bool = True,
) -> Any:
    """American option price (Leisen-Reimer tree), vectorized and parallel.

    Args:
        S: Spot price(s).
        K: Strike(s).
        T: Time(s) to expiry in years.
        r: Continuously compounded risk-free rate(s).
        sigma: Volatility (decimal).
        q: Continuous dividend yield(s).
        is_call: True for calls, False for puts (bool array or 'C'/'P' strings allowed).
        steps: Odd number of tree steps.
        richardson: Extrapolate against a ``steps // 2 | 1`` tree (recommended).

    Returns:
        A float for scalar inputs, otherwise an array of the broadcast shape; NaN for invalid
        inputs (as :func:`strategies.pricing.bs_price`).

    Raises:
        ValueError: if ``steps`` is not an odd integer >= 5.
    """
    steps = _check_steps(steps)
    shape, (s_, k_, t_, r_, q_, v_), flags = broadcast(S, K, T, r, q, sigma, is_call=is_call)
    out = np.empty(flags.size)
    args = (s_, k_, t_, r_, q_, v_, flags, steps, bool(richardson), out)
    launch(_price_par, _price_ser, out.size, _MIN_PARALLEL, *args)
    return restore(out, shape)


def american_implied_vol(
    price: Any,
    S: Any,
    K: Any,
    T: Any,
    r: Any,
    q: Any = 0.0,
    is_call: Any = True,
    *,
    steps: int = DEFAULT_STEPS,
    richardson: bool = True,
    return_status: bool = False,
) -> Any:
    """Volatility at which :func:`american_price` (same settings) matches ``price``.

    Arguments as :func:`american_price` plus ``price``. The band is ``(zero-vol value, S)`` for
    calls and ``(zero-vol value, K)`` for puts, with the boundary rule of :func:`implied_vol`
    (:data:`strategies.pricing.BOUND_RTOL` of ``max(S, K)``): a price at the lower bound gives
    0.0 with status ``AT_INTRINSIC``, one at the upper bound NaN with ``AT_UPPER_BOUND``, one
    beyond them NaN with ``BELOW_INTRINSIC`` / ``ABOVE_UPPER_BOUND`` (see :class:`IVStatus`).

    Returns:
        Implied volatilities shaped like the broadcast inputs (float for scalars); with
        ``return_status=True`` a tuple ``(iv, status)`` with int8 :class:`IVStatus` codes.

    Raises:
        ValueError: if ``steps`` is not an odd integer >= 5.
    """
    steps = _check_steps(steps)
    shape, (p_, s_, k_, t_, r_, q_), flags = broadcast(price, S, K, T, r, q, is_call=is_call)
    iv = np.empty(flags.size)
    status = np.empty(flags.size, dtype=np.int8)
    args = (p_, s_, k_, t_, r_, q_, flags, steps, bool(richardson), iv, status)
    launch(_iv_par, _iv_ser, iv.size, _MIN_PARALLEL, *args)
    if return_status:
        return restore(iv, shape), restore(status, shape)
    return restore(iv, shape)
