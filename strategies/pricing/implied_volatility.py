"""Black-Scholes-Merton implied volatility, vectorized and parallel.

The solver (see :mod:`strategies.pricing._iv_core`) works in Jaeckel's normalized coordinates
with safeguarded third-order Householder steps (about two per option) and converges for every
price strictly inside the no-arbitrage bounds ``max(+-(S e^{-qT} - K e^{-rT}), 0) < price <
S e^{-qT}`` (call) or ``K e^{-rT}`` (put). One boundary rule says what "strictly" means, the
same on every CPU and libm (:data:`strategies.pricing.BOUND_RTOL`, 8 x 2**-52 of the larger of
``S e^{-qT}`` and ``K e^{-rT}``): a price that close to the lower bound is ``AT_INTRINSIC`` with
volatility 0.0 (the zero-volatility limit, which reprices to the bound), one that close to the
upper bound ``AT_UPPER_BOUND`` with NaN; only prices beyond are ``BELOW_INTRINSIC`` /
``ABOVE_UPPER_BOUND``. :func:`strategies.pricing.no_arbitrage_status` applies the rule alone.
The round trip ``implied_vol(bs_price(sigma)) - sigma`` is below 1e-10 wherever the price
actually pins the volatility down to that level, i.e. wherever ``eps * price / vega`` is small;
for deep in-the-money options the time value drowns in the rounding of the intrinsic value and
no double-precision method can do better (pass the out-of-the-money price there).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
from numba import njit, prange

from strategies.pricing import _iv_core as core
from strategies.pricing._inputs import broadcast, launch, restore
from strategies.pricing.black_scholes import MIN_PARALLEL, greeks_core


class IVStatus(IntEnum):
    """Why an implied volatility is (or is not) available.

    ``tol = BOUND_RTOL * max(S e^{-qT}, K e^{-rT})`` (:data:`strategies.pricing.BOUND_RTOL`).
    The comments give the European bounds; for American options the lower bound is the
    zero-volatility value, the upper bound S (call) / K (put). Only ``OK`` carries Greeks.
    """

    OK = core.OK  # strictly inside the bounds (by more than tol): solved
    BELOW_INTRINSIC = core.BELOW_INTRINSIC  # price < discounted forward intrinsic value - tol
    ABOVE_UPPER_BOUND = core.ABOVE_UPPER_BOUND  # price > S e^{-qT} (call) / K e^{-rT} (put) + tol
    NONPOSITIVE_INPUT = core.NONPOSITIVE_INPUT  # price, S, K or T <= 0
    NO_CONVERGENCE = core.NO_CONVERGENCE  # budget exhausted (American: prices below ~1e-20)
    NON_FINITE_INPUT = core.NON_FINITE_INPUT  # NaN or infinite input
    AT_INTRINSIC = core.AT_INTRINSIC  # within tol of the intrinsic value: volatility 0.0
    AT_UPPER_BOUND = core.AT_UPPER_BOUND  # within tol of the upper bound: volatility NaN


@dataclass(frozen=True, slots=True)
class IVGreeks:
    """Implied volatility with the first-order Greeks at that volatility.

    Units as :class:`strategies.pricing.black_scholes.Greeks`: vega per 1.00 vol, theta per year,
    rho per 1.00 rate. Greeks are NaN wherever ``status != IVStatus.OK``.
    """

    iv: Any
    status: Any
    delta: Any
    gamma: Any
    vega: Any
    theta: Any
    rho: Any

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a name -> values dict (handy for DataFrame construction)."""
        return {name: getattr(self, name) for name in self.__slots__}


@njit(parallel=True, cache=True, error_model="numpy")
def _iv_par(price, S, K, T, r, q, call, iv, status):
    for i in prange(iv.size):
        iv[i], status[i] = core.iv_scalar(price[i], S[i], K[i], T[i], r[i], q[i], call[i])


@njit(cache=True, error_model="numpy")
def _iv_ser(price, S, K, T, r, q, call, iv, status):
    for i in range(iv.size):
        iv[i], status[i] = core.iv_scalar(price[i], S[i], K[i], T[i], r[i], q[i], call[i])


@njit(cache=True, nogil=True, error_model="numpy")
def _iv_greeks_into(price, S, K, T, r, q, call, out, status, i):
    sigma, st, dq, dr, lnm = core.iv_solve(price[i], S[i], K[i], T[i], r[i], q[i], call[i])
    status[i] = st
    out[0, i] = sigma
    if st == core.OK:
        g = greeks_core(S[i], K[i], T[i], r[i], q[i], sigma, call[i], dq, dr, lnm)
        for j in range(5):
            out[j + 1, i] = g[j]
    else:
        for j in range(5):
            out[j + 1, i] = np.nan


@njit(parallel=True, cache=True, error_model="numpy")
def _iv_greeks_par(price, S, K, T, r, q, call, out, status):
    for i in prange(status.size):
        _iv_greeks_into(price, S, K, T, r, q, call, out, status, i)


@njit(cache=True, error_model="numpy")
def _iv_greeks_ser(price, S, K, T, r, q, call, out, status):
    for i in range(status.size):
        _iv_greeks_into(price, S, K, T, r, q, call, out, status, i)


def implied_vol(
    price: Any,
    S: Any,
    K: Any,
    T: Any,
    r: Any,
    q: Any = 0.0,
    is_call: Any = True,
    *,
    return_status: bool = False,
) -> Any:
    """Black-Scholes-Merton implied volatility, vectorized with broadcasting.

    Args:
        price: Option price(s).
        S: Spot price(s).
        K: Strike(s).
        T: Time(s) to expiry in years (> 0).
        r: Continuously compounded risk-free rate(s).
        q: Continuous dividend yield(s).
        is_call: True for calls, False for puts (bool array or 'C'/'P' strings allowed).
        return_status: Also return an int8 array of :class:`IVStatus` codes.

    Returns:
        Implied volatilities (float for scalar inputs, else an array of the broadcast shape):
        0.0 at the intrinsic value (``AT_INTRINSIC``), NaN where no volatility exists; with
        ``return_status=True`` a tuple ``(iv, status)``.

    Example:
        >>> round(implied_vol(4.759422392871532, 42.0, 40.0, 0.5, 0.10), 12)
        0.2
    """
    shape, (p_, s_, k_, t_, r_, q_), flags = broadcast(price, S, K, T, r, q, is_call=is_call)
    iv = np.empty(flags.size)
    status = np.empty(flags.size, dtype=np.int8)
    launch(_iv_par, _iv_ser, iv.size, MIN_PARALLEL, p_, s_, k_, t_, r_, q_, flags, iv, status)
    if return_status:
        return restore(iv, shape), restore(status, shape)
    return restore(iv, shape)


def iv_and_greeks(
    price: Any, S: Any, K: Any, T: Any, r: Any, q: Any = 0.0, is_call: Any = True
) -> IVGreeks:
    """Implied volatility plus delta, gamma, vega, theta and rho in one parallel pass.

    Arguments as :func:`implied_vol`. This is the chain-snapshot workhorse: one kernel launch
    that reuses the discount factors and log-moneyness of the solve for the Greeks.

    Returns:
        An :class:`IVGreeks` with arrays of the broadcast shape (floats for scalar inputs).
    """
    shape, (p_, s_, k_, t_, r_, q_), flags = broadcast(price, S, K, T, r, q, is_call=is_call)
    out = np.empty((6, flags.size))
    status = np.empty(flags.size, dtype=np.int8)
    args = (p_, s_, k_, t_, r_, q_, flags, out, status)
    launch(_iv_greeks_par, _iv_greeks_ser, status.size, MIN_PARALLEL, *args)
    iv, delta, gamma, vega, theta, rho = (restore(row, shape) for row in out)
    return IVGreeks(iv, restore(status, shape), delta, gamma, vega, theta, rho)
