"""European no-arbitrage bounds and the boundary rule the implied-volatility solver applies.

``max(+-(S e^{-qT} - K e^{-rT}), 0) <= price <= S e^{-qT}`` (call) or ``K e^{-rT}`` (put). A
price within ``BOUND_RTOL * max(S e^{-qT}, K e^{-rT})`` of a bound is *at* it (8 x 2**-52; see
:data:`strategies.pricing._iv_core.BOUND_RTOL` for why). These functions run the
very numba code :func:`strategies.pricing.implied_vol` runs, so a caller (a test, a data check,
a benchmark) that classifies prices with them agrees with the solver on every host; computing
the bounds again with ``np.exp`` would not (numpy's AVX-512 ``exp`` is not glibc's).

Example:
    >>> from strategies.pricing import IVStatus, no_arbitrage_bounds, no_arbitrage_status
    >>> lower, upper = no_arbitrage_bounds(100.0, 90.0, 0.5, 0.05, 0.02)
    >>> [IVStatus(s).name for s in no_arbitrage_status([lower, lower + 1.0], 100.0, 90.0, 0.5,
    ...                                                 0.05, 0.02)]
    ['AT_INTRINSIC', 'OK']
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from strategies.pricing import _iv_core as core
from strategies.pricing._inputs import broadcast, restore

BOUND_RTOL = core.BOUND_RTOL  # re-exported: the tolerance of the boundary rule


@njit(cache=True, error_model="numpy")
def _bounds(S, K, T, r, q, call, lower, upper):
    for i in range(lower.size):
        _, _, gap, upper[i], _ = core.european_band(S[i], K[i], T[i], r[i], q[i], call[i])
        lower[i] = max(gap, 0.0)


@njit(cache=True, error_model="numpy")
def _status(price, S, K, T, r, q, call, status):
    for i in range(status.size):
        st = core.input_status(price[i], S[i], K[i], T[i], r[i], q[i])
        if st == core.OK:
            _, _, gap, upper, scale = core.european_band(S[i], K[i], T[i], r[i], q[i], call[i])
            st = core.bound_status(price[i], gap, upper, scale)
        status[i] = st


def no_arbitrage_bounds(
    S: Any, K: Any, T: Any, r: Any, q: Any = 0.0, is_call: Any = True
) -> tuple[Any, Any]:
    """Lower (discounted intrinsic) and upper European bounds, as the solver computes them.

    Arguments as :func:`strategies.pricing.bs_price` without ``sigma``.

    Returns:
        ``(lower, upper)``, each a float for scalar inputs, else an array of the broadcast shape.
    """
    shape, (s_, k_, t_, r_, q_), flags = broadcast(S, K, T, r, q, is_call=is_call)
    lower, upper = np.empty(flags.size), np.empty(flags.size)
    _bounds(s_, k_, t_, r_, q_, flags, lower, upper)
    return restore(lower, shape), restore(upper, shape)


def no_arbitrage_status(
    price: Any, S: Any, K: Any, T: Any, r: Any, q: Any = 0.0, is_call: Any = True
) -> Any:
    """Where each price sits against the bounds: the status the solver gives before it solves.

    Arguments as :func:`strategies.pricing.implied_vol`.

    Returns:
        int8 :class:`strategies.pricing.IVStatus` codes: ``OK`` strictly inside (the solver
        then converges), ``AT_INTRINSIC`` / ``AT_UPPER_BOUND`` within :data:`BOUND_RTOL` of a
        bound, ``BELOW_INTRINSIC`` / ``ABOVE_UPPER_BOUND`` beyond, or an input status.
    """
    shape, (p_, s_, k_, t_, r_, q_), flags = broadcast(price, S, K, T, r, q, is_call=is_call)
    status = np.empty(flags.size, dtype=np.int8)
    _status(p_, s_, k_, t_, r_, q_, flags, status)
    return restore(status, shape)
