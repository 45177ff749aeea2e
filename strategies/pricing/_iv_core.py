"""Scalar implied-volatility solver in Jaeckel's normalized coordinates (numba, private).

Every European option is mapped to an out-of-the-money call on the normalized forward:
``x = -|ln(F/K)| <= 0`` and ``beta = (price - intrinsic) / (e^{-rT} sqrt(F K))`` so that
``b(x, s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2)`` with ``s = sigma sqrt(T)`` and
``0 < beta < e^{x/2}`` (Jaeckel, "By Implication", Wilmott 2006; "Let's Be Rational", 2015).

``b`` is convex in ``s`` below the inflection point ``s_c = sqrt(2|x|)`` and concave above it.
Below it we iterate on ``ln b(s) - ln beta`` (almost linear in the far wing, where ``b`` is
astronomically steep); above it on ``b(s) - beta``. The steps are third-order Householder
(quartic convergence), cheap because ``b''/b'`` and ``b'''/b'`` have closed forms in ``x/s`` and
``s``. Starting points:

* lower branch: the smaller of two overestimates of the root, the asymptotic wing inversion
  ``b ~ (2 pi |x| / sqrt 27) N(x / (sqrt 3 s))^3`` and the tangent to ``b`` at ``s_c``;
* upper branch: the exact at-the-money inversion ``e^{x/2} - b ~ (e^{x/2} + e^{-x/2}) N(-s/2)``,
  with the tangent at ``s_c`` (below the root, as ``b`` is concave there) closing the bracket.

Each step is safeguarded by a bracket that shrinks with the sign of the objective; a step that
leaves the bracket becomes a bisection (or a doubling while the upper end is still infinite).
On realistic chains the solver needs about two steps per option plus one evaluation at ``s_c``;
on the extreme test grid never more than eight.
"""

from __future__ import annotations

import math

from numba import njit

from strategies.pricing._normal import INV_SQRT_2PI, norm_cdf, norm_ppf_approx

# Status codes (mirrored by strategies.pricing.implied_volatility.IVStatus).
OK = 0
BELOW_INTRINSIC = 1
ABOVE_UPPER_BOUND = 2
NONPOSITIVE_INPUT = 3
NO_CONVERGENCE = 4
NON_FINITE_INPUT = 5
AT_INTRINSIC = 6
AT_UPPER_BOUND = 7

BOUND_ULPS = 8
BOUND_RTOL = BOUND_ULPS * 2.0**-52
"""Tolerance of the boundary rule, relative to the scale of the bound (about 1.8e-15).

A no-arbitrage bound is a difference of discounted prices (``S e^{-qT} - K e^{-rT}``, or
``S - K`` and the like for American options) and carries the rounding of the ``exp`` behind it:
numpy's AVX-512 ``exp`` and glibc's (which numba's ``math.exp`` calls, itself in an FMA or a
plain variant chosen by CPU) differ by one ulp on about 6% of arguments (the two glibc variants
on about 0.1%), and the subtraction cancels. Two correct computations of one bound therefore
differ by up to about 4 ulps of the larger term (an ulp per ``exp``, per product, half an ulp
for the difference), however small the bound. A price within ``BOUND_RTOL * scale`` of a bound,
``scale`` being the larger of the discounted spot and strike, is *at* the bound
(``AT_INTRINSIC`` / ``AT_UPPER_BOUND``) on every host; only prices farther out are
``BELOW_INTRINSIC`` / ``ABOVE_UPPER_BOUND``. ``BOUND_ULPS`` units of ``2**-52`` (8 to 16 ulps of
the scale) leave twice that margin and stay far below any quotable time value (1.8e-12 dollars on
a $1,000 strike). The lower bound's tolerance applies to the unclamped forward gap, so an
out-of-the-money option, whose bound is an exact 0, keeps every positive price (1e-300 has a
volatility).
"""

MAX_ITER = 64
_SQRT3 = math.sqrt(3.0)
_LOWER_MAP = math.sqrt(27.0) / (2.0 * math.pi)
# The steps converge quartically: after a relative step this small the error is ~1e-20 times a
# modest constant (on the test grids tolerances up to 1e-3 never moved a result by 1e-12).
_STEP_TOL = 1e-5


@njit(cache=True, nogil=True, error_model="numpy")
def normalized_otm_call(x: float, s: float, ex: float, iex: float) -> float:
    """``b(x, s)`` for ``x <= 0`` given ``ex = e^{x/2}`` and ``iex = e^{-x/2}``."""
    h = x / s
    t = 0.5 * s
    return ex * norm_cdf(h + t) - iex * norm_cdf(h - t)


@njit(cache=True, nogil=True, error_model="numpy")
def _initial_guess(
    beta: float, x: float, ex: float, iex: float, s_c: float, b_c: float, lower: bool
) -> tuple[float, float]:
    """Return ``(guess, bound)``: a start and a proven lower bound for the root (upper branch)."""
    s_tan = s_c + (beta - b_c) / (INV_SQRT_2PI * ex)  # tangent to b at the inflection point
    if lower:  # both candidates overestimate the root (b is convex here): take the smaller
        s = s_c
        f = (beta * _LOWER_MAP / -x) ** (1.0 / 3.0)
        if f < 0.5:
            s = min(s, -x / (_SQRT3 * -norm_ppf_approx(f)))
        if 0.0 < s_tan < s:
            s = s_tan
        return (s if s < s_c else 0.99 * s_c), 0.0
    # concave branch: the tangent underestimates the root (a safe bracket end); start from the
    # at-the-money map, exact for x = 0 and within a few percent elsewhere
    g = (ex - beta) / (ex + iex)
    s = -2.0 * norm_ppf_approx(g) if g > 0.0 else 2.0 * s_tan + 1.0
    return (s if s > s_tan else 1.01 * s_tan + 1e-300), s_tan


@njit(cache=True, nogil=True, error_model="numpy")
def _householder3(newton: float, hh2: float, hh3: float) -> float:
    """Third-order Householder step given the Newton step, g''/g' and g'''/g'."""
    return newton * (1.0 + 0.5 * hh2 * newton) / (1.0 + newton * (hh2 + hh3 * newton / 6.0))


@njit(cache=True, nogil=True, error_model="numpy")
def solve_normalized(beta: float, x: float) -> tuple[float, int]:
    """Solve ``b(x, s) = beta`` for ``s``; needs ``x <= 0`` and ``0 < beta < e^{x/2}``.

    Returns:
        ``(s, status)`` with status ``OK`` or ``NO_CONVERGENCE``.
    """
    ex = math.exp(0.5 * x)
    iex = 1.0 / ex
    s_c = math.sqrt(-2.0 * x)
    b_c = 0.5 * ex - iex * norm_cdf(-s_c)  # b(x, s_c): the first N() argument is exactly 0
    lower = beta < b_c
    s, bound = _initial_guess(beta, x, ex, iex, s_c, b_c, lower)
    # the bound is exact in theory; the margin keeps rounding from shutting the root out
    lo, hi = (0.0, s_c) if lower else (max(s_c, bound) * (1.0 - 1e-10), math.inf)
    for _ in range(MAX_ITER):
        b = normalized_otm_call(x, s, ex, iex)
        h = x / s
        t = 0.5 * s
        vega = INV_SQRT_2PI * math.exp(-0.5 * (h * h + t * t))
        w = h * h / s - 0.25 * s  # b'' / b'
        w3 = w * w - 3.0 * h * h / (s * s) - 0.25  # b''' / b'
        if lower and b > 0.0:
            obj = math.log(b / beta)
            a = vega / b  # d ln b / ds
            step = _householder3(-obj / a, w - a, w3 - 3.0 * a * w + 2.0 * a * a)
        elif lower:  # b underflowed: far below the root
            obj = -1.0
            step = math.inf
        else:
            obj = b - beta
            step = _householder3(-obj / vega, w, w3)
        if obj < 0.0:
            lo = s
        else:
            hi = s
        if math.isfinite(step) and abs(step) <= _STEP_TOL * s:
            return s + step, OK
        s_new = s + step
        if not (lo < s_new < hi):  # also catches NaN
            s_new = 2.0 * s if math.isinf(hi) else 0.5 * (lo + hi)
        if s_new == s:
            return s, OK  # bracket collapsed to adjacent doubles
        s = s_new
    return s, NO_CONVERGENCE


@njit(cache=True, nogil=True, error_model="numpy")
def bound_status(price: float, gap: float, upper: float, scale: float) -> int:
    """Where ``price`` sits in the no-arbitrage band: the one boundary rule of the package.

    Args:
        price: A positive, finite option price.
        gap: The unclamped intrinsic value (the bound is ``max(gap, 0)``), e.g.
            ``+-(S e^{-qT} - K e^{-rT})``.
        upper: The upper bound (``S e^{-qT}`` or ``K e^{-rT}``; ``S`` or ``K`` if American).
        scale: The magnitude the bounds were computed from; tolerances are
            ``BOUND_RTOL * scale``.

    Returns:
        ``OK`` strictly inside, ``AT_INTRINSIC`` / ``AT_UPPER_BOUND`` within the tolerance of a
        bound, ``BELOW_INTRINSIC`` / ``ABOVE_UPPER_BOUND`` beyond it.
    """
    tol = BOUND_RTOL * scale
    if price - gap <= tol:  # the zero bound of an out-of-the-money option has no tolerance
        return BELOW_INTRINSIC if price - gap < -tol else AT_INTRINSIC
    if price >= upper - tol:
        return ABOVE_UPPER_BOUND if price > upper + tol else AT_UPPER_BOUND
    return OK


@njit(cache=True, nogil=True, error_model="numpy")
def input_status(price, S, K, T, r, q):
    """``NON_FINITE_INPUT``, ``NONPOSITIVE_INPUT`` or ``OK`` (the inputs, not yet the bounds)."""
    finite = (
        math.isfinite(price)
        and math.isfinite(S)
        and math.isfinite(K)
        and math.isfinite(T)
        and math.isfinite(r)
        and math.isfinite(q)
    )
    if not finite:
        return NON_FINITE_INPUT
    if price <= 0.0 or S <= 0.0 or K <= 0.0 or T <= 0.0:
        return NONPOSITIVE_INPUT
    return OK


@njit(cache=True, nogil=True, error_model="numpy")
def european_band(S, K, T, r, q, call):
    """``(e^{-qT}, e^{-rT}, gap, upper, scale)``: the European band as :func:`bound_status` wants.

    ``gap = +-(S e^{-qT} - K e^{-rT})`` is the unclamped intrinsic value, ``upper`` is
    ``S e^{-qT}`` (call) or ``K e^{-rT}`` (put), ``scale`` the larger of the two.
    """
    dq = math.exp(-q * T)
    dr = math.exp(-r * T)
    fwd_s = S * dq
    fwd_k = K * dr
    gap = fwd_s - fwd_k if call else fwd_k - fwd_s
    return dq, dr, gap, (fwd_s if call else fwd_k), max(fwd_s, fwd_k)


@njit(cache=True, nogil=True, error_model="numpy")
def iv_solve(price, S, K, T, r, q, call):
    """``(sigma, status, e^{-qT}, e^{-rT}, ln(F/K))``; the extras let callers reuse them."""
    nan = math.nan
    status = input_status(price, S, K, T, r, q)
    if status != OK:
        return nan, status, nan, nan, nan
    dq, dr, gap, upper, scale = european_band(S, K, T, r, q, call)
    fwd_s = S * dq  # discounted forward, e^{-rT} F
    fwd_k = K * dr  # discounted strike
    log_moneyness = math.log(fwd_s / fwd_k)
    status = bound_status(price, gap, upper, scale)
    if status == AT_INTRINSIC:
        return 0.0, status, dq, dr, log_moneyness  # the zero-vol limit: bs_price(0) == bound
    if status != OK:
        return nan, status, dq, dr, log_moneyness
    x = -abs(log_moneyness)
    beta = (price - max(gap, 0.0)) / math.sqrt(fwd_s * fwd_k)  # > 0: the price is inside
    if beta >= math.exp(0.5 * x):  # inside by BOUND_RTOL, yet at b's maximum after rounding
        return nan, AT_UPPER_BOUND, dq, dr, log_moneyness
    s, status = solve_normalized(beta, x)
    sigma = s / math.sqrt(T) if status == OK else nan
    return sigma, status, dq, dr, log_moneyness


@njit(cache=True, nogil=True, error_model="numpy")
def iv_scalar(
    price: float, S: float, K: float, T: float, r: float, q: float, call: bool
) -> tuple[float, int]:
    """Black-Scholes-Merton implied volatility of one option as ``(sigma, status)``."""
    sigma, status, _, _, _ = iv_solve(price, S, K, T, r, q, call)
    return sigma, status
