"""Black-Scholes-Merton prices and Greeks with a continuous dividend yield.

Conventions (every function in :mod:`strategies.pricing`):

* ``S`` spot, ``K`` strike, ``T`` time to expiry in years, ``r`` risk-free rate and ``q``
  dividend yield as continuously compounded decimals (0.05 = 5%), ``sigma`` volatility as a
  decimal (0.20 = 20%).
* ``vega`` and ``volga`` are per 1.00 of volatility, ``rho`` per 1.00 of rate, ``theta`` per
  year of calendar time (``-dV/dT``). Use :func:`per_vol_point` and :func:`per_day` for the
  per-1%-vol and per-calendar-day figures that screens show.
* ``vanna`` is ``d2V/dS dsigma`` and ``volga`` is ``d2V/dsigma2``.

When ``sigma * sqrt(T) == 0`` (expiry or zero volatility) the value is the discounted forward
intrinsic ``max(+-(S e^{-qT} - K e^{-rT}), 0)``, delta is a step (1/2 exactly at the forward)
and gamma, vega, vanna and volga are 0. Invalid inputs (``S <= 0``, ``K <= 0``, ``T < 0``,
``sigma < 0`` or anything non-finite) give NaN rather than an exception, so one bad row never
sinks a vectorized chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

from strategies.pricing._inputs import broadcast, launch, restore
from strategies.pricing._normal import norm_cdf, norm_pdf

N_GREEKS = 7  # delta, gamma, vega, theta, rho, vanna, volga
MIN_PARALLEL = 2048  # below this many options the thread-pool wake-up costs more than it saves


@dataclass(frozen=True, slots=True)
class Greeks:
    """Black-Scholes-Merton sensitivities (arrays of the broadcast input shape, or floats).

    Attributes:
        delta: dV/dS.
        gamma: d2V/dS2.
        vega: dV/dsigma per 1.00 of volatility (divide by 100 for per vol point).
        theta: -dV/dT per year (divide by 365 for per calendar day).
        rho: dV/dr per 1.00 of rate.
        vanna: d2V/dS dsigma.
        volga: d2V/dsigma2 per 1.00 of volatility squared.
    """

    delta: Any
    gamma: Any
    vega: Any
    theta: Any
    rho: Any
    vanna: Any
    volga: Any

    def as_dict(self) -> dict[str, Any]:
        """Return the Greeks as a name -> values dict (handy for DataFrame construction)."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


def per_day(theta: Any) -> Any:
    """Convert theta per year to theta per calendar day (divide by 365)."""
    return np.divide(theta, 365.0)


def per_vol_point(vega: Any) -> Any:
    """Convert vega per 1.00 of volatility to vega per volatility point (divide by 100)."""
    return np.divide(vega, 100.0)


@njit(cache=True, nogil=True, error_model="numpy")
def valid_inputs(S: float, K: float, T: float, r: float, q: float, sigma: float) -> bool:
    """True when the inputs describe a priceable option."""
    finite = (
        math.isfinite(S)
        and math.isfinite(K)
        and math.isfinite(T)
        and math.isfinite(r)
        and math.isfinite(q)
        and math.isfinite(sigma)
    )
    return finite and S > 0.0 and K > 0.0 and T >= 0.0 and sigma >= 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def otm_value(fwd_s: float, fwd_k: float, x: float, s: float) -> float:
    """Value of the out-of-the-money option: the call if ``x <= 0`` else the put.

    ``fwd_s = S e^{-qT}``, ``fwd_k = K e^{-rT}``, ``x = ln(fwd_s / fwd_k)``, ``s = sigma sqrt(T)``.
    """
    d1 = x / s + 0.5 * s
    d2 = d1 - s
    if x <= 0.0:
        v = fwd_s * norm_cdf(d1) - fwd_k * norm_cdf(d2)
    else:
        v = fwd_k * norm_cdf(-d2) - fwd_s * norm_cdf(-d1)
    return max(v, 0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def bsm_price_scalar(
    S: float, K: float, T: float, r: float, q: float, sigma: float, call: bool
) -> float:
    """One BSM price: intrinsic plus the out-of-the-money counterpart (put-call parity)."""
    if not valid_inputs(S, K, T, r, q, sigma):
        return math.nan
    return forward_price(S * math.exp(-q * T), K * math.exp(-r * T), sigma * math.sqrt(T), call)


@njit(cache=True, nogil=True, error_model="numpy")
def forward_price(fwd_s: float, fwd_k: float, s: float, call: bool) -> float:
    """BSM price from ``fwd_s = S e^{-qT}``, ``fwd_k = K e^{-rT}`` and ``s = sigma sqrt(T)``.

    The kernel behind :func:`bsm_price_scalar`; scenario revaluation (:mod:`strategies.stress`)
    calls it with discount factors computed once per leg.
    """
    sign = 1.0 if call else -1.0
    intrinsic = max(sign * (fwd_s - fwd_k), 0.0)
    if s == 0.0:
        return intrinsic
    return intrinsic + otm_value(fwd_s, fwd_k, math.log(fwd_s / fwd_k), s)


@njit(cache=True, nogil=True, error_model="numpy")
def greeks_core(S, K, T, r, q, sigma, call, dq, dr, log_moneyness):
    """Greeks from precomputed ``dq = e^{-qT}``, ``dr = e^{-rT}`` and ``ln(S dq / (K dr))``."""
    sign = 1.0 if call else -1.0
    sqrt_t = math.sqrt(T)
    s = sigma * sqrt_t
    gamma = vega = decay = vanna = volga = 0.0
    if s > 0.0:
        d1 = log_moneyness / s + 0.5 * s
        d2 = d1 - s
        pdf = norm_pdf(d1)
        n1 = norm_cdf(sign * d1)
        n2 = norm_cdf(sign * d2)
        vega = S * dq * pdf * sqrt_t
        gamma = dq * pdf / (S * s)
        decay = -0.5 * vega * sigma / T
        vanna = -dq * pdf * d2 / sigma
        volga = vega * d1 * d2 / sigma
    else:  # intrinsic limit: step functions of moneyness
        gap = sign * (S * dq - K * dr)
        n1 = 1.0 if gap > 0.0 else (0.5 if gap == 0.0 else 0.0)
        n2 = n1
    delta = sign * dq * n1
    theta = decay + sign * (q * S * dq * n1 - r * K * dr * n2)
    rho = sign * K * T * dr * n2
    return delta, gamma, vega, theta, rho, vanna, volga


@njit(cache=True, nogil=True, error_model="numpy")
def bsm_greeks_scalar(
    S: float, K: float, T: float, r: float, q: float, sigma: float, call: bool
) -> tuple[float, float, float, float, float, float, float]:
    """One option's (delta, gamma, vega, theta, rho, vanna, volga); NaNs for invalid inputs."""
    if not valid_inputs(S, K, T, r, q, sigma):
        nan = math.nan
        return nan, nan, nan, nan, nan, nan, nan
    dq = math.exp(-q * T)
    dr = math.exp(-r * T)
    return greeks_core(S, K, T, r, q, sigma, call, dq, dr, math.log(S * dq / (K * dr)))


# Each kernel has a parallel and a serial twin (see _inputs.launch); twins are separate
# functions because numba's on-disk cache keys on the function, not on the parallel flag.
@njit(parallel=True, cache=True, error_model="numpy")
def _price_par(S, K, T, r, q, sigma, call, out):
    for i in prange(out.size):
        out[i] = bsm_price_scalar(S[i], K[i], T[i], r[i], q[i], sigma[i], call[i])


@njit(cache=True, error_model="numpy")
def _price_ser(S, K, T, r, q, sigma, call, out):
    for i in range(out.size):
        out[i] = bsm_price_scalar(S[i], K[i], T[i], r[i], q[i], sigma[i], call[i])


@njit(cache=True, nogil=True, error_model="numpy")
def _greeks_into(S, K, T, r, q, sigma, call, out, i):
    g = bsm_greeks_scalar(S[i], K[i], T[i], r[i], q[i], sigma[i], call[i])
    for j in range(N_GREEKS):
        out[j, i] = g[j]


@njit(parallel=True, cache=True, error_model="numpy")
def _greeks_par(S, K, T, r, q, sigma, call, out):
    for i in prange(out.shape[1]):
        _greeks_into(S, K, T, r, q, sigma, call, out, i)


@njit(cache=True, error_model="numpy")
def _greeks_ser(S, K, T, r, q, sigma, call, out):
    for i in range(out.shape[1]):
        _greeks_into(S, K, T, r, q, sigma, call, out, i)


def bs_price(S: Any, K: Any, T: Any, r: Any, sigma: Any, q: Any = 0.0, is_call: Any = True) -> Any:
    """Black-Scholes-Merton price of European options, vectorized with broadcasting.

    Args:
        S: Spot price(s).
        K: Strike(s).
        T: Time(s) to expiry in years.
        r: Continuously compounded risk-free rate(s).
        sigma: Volatility (decimal, per sqrt(year)).
        q: Continuous dividend yield(s).
        is_call: True for calls, False for puts (bool array or 'C'/'P' strings allowed).

    Returns:
        A float for scalar inputs, otherwise a float64 array of the broadcast shape. Invalid
        inputs give NaN.

    Example:
        >>> round(bs_price(42.0, 40.0, 0.5, 0.10, 0.20), 2)
        4.76
    """
    shape, (s_, k_, t_, r_, q_, v_), flags = broadcast(S, K, T, r, q, sigma, is_call=is_call)
    out = np.empty(flags.size)
    launch(_price_par, _price_ser, out.size, MIN_PARALLEL, s_, k_, t_, r_, q_, v_, flags, out)
    return restore(out, shape)


def bs_greeks(
    S: Any, K: Any, T: Any, r: Any, sigma: Any, q: Any = 0.0, is_call: Any = True
) -> Greeks:
    """Black-Scholes-Merton Greeks; arguments as :func:`bs_price`.

    Returns:
        A :class:`Greeks` holding delta, gamma, vega (per 1.00 vol), theta (per year), rho
        (per 1.00 rate), vanna and volga, each shaped like the broadcast inputs.
    """
    shape, (s_, k_, t_, r_, q_, v_), flags = broadcast(S, K, T, r, q, sigma, is_call=is_call)
    out = np.empty((N_GREEKS, flags.size))
    launch(_greeks_par, _greeks_ser, flags.size, MIN_PARALLEL, s_, k_, t_, r_, q_, v_, flags, out)
    return Greeks(*(restore(row, shape) for row in out))
