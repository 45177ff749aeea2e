"""Standard normal helpers compiled with numba (scalar, nopython).

``norm_cdf`` goes through ``erfc`` so the lower tail keeps full relative precision down to the
underflow limit (``1 - 0.5 * erfc`` would lose it). ``norm_ppf_approx`` is Acklam's rational
approximation (relative error below 1.2e-9), all the implied-vol solver needs for a start.
"""

from __future__ import annotations

import math

from numba import njit

SQRT2 = math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# Acklam's coefficients (central region a/b, tails c/d).
_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_B = (
    -5.447609879822406e01,
    1.615858368580409e02,
    -1.556989798598866e02,
    6.680131188771972e01,
    -1.328068155288572e01,
)
_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425


@njit(cache=True, nogil=True, error_model="numpy")
def norm_pdf(z: float) -> float:
    """Standard normal density."""
    return INV_SQRT_2PI * math.exp(-0.5 * z * z)


@njit(cache=True, nogil=True, error_model="numpy")
def norm_cdf(z: float) -> float:
    """Standard normal distribution function with full relative precision in the lower tail."""
    return 0.5 * math.erfc(-z / SQRT2)


@njit(cache=True, nogil=True, error_model="numpy")
def _ppf_tail(p: float) -> float:
    q = math.sqrt(-2.0 * math.log(p))
    num = ((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]
    return num / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)


@njit(cache=True, nogil=True, error_model="numpy")
def norm_ppf_approx(p: float) -> float:
    """Acklam's inverse normal, relative error < 1.2e-9; ``p`` must lie in (0, 1)."""
    if p < _P_LOW:
        return _ppf_tail(p)
    if p > 1.0 - _P_LOW:
        return -_ppf_tail(1.0 - p)
    q = p - 0.5
    r = q * q
    num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
    return num / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
