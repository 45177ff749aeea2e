"""Raw SVI smiles (Gatheral): fit, evaluate, and test for static arbitrage.

Total implied variance at log-moneyness ``k = ln(K/F)``::

    w(k) = a + b * (rho * (k - m) + sqrt((k - m)**2 + sigma**2))

The fit works in the parameters ``(v_min, s_left, s_right, m, sigma)`` where ``s_left =
b (1 - rho)`` and ``s_right = b (1 + rho)`` are the wing slopes and ``v_min = a + b sigma
sqrt(1 - rho**2)`` the smallest total variance, so plain box bounds encode the constraints:
non-negative variance (``v_min >= 0``), Roger Lee's moment bound on both wings (slopes in
``[0, 2]``, hence ``|rho| <= 1`` and ``b >= 0``) and ``sigma > 0``. Butterfly arbitrage is
checked afterwards with Gatheral's density function ``g(k) >= 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

MAX_SLOPE = 2.0  # Roger Lee: total-variance wings grow at most 2|k|


@dataclass(frozen=True, slots=True)
class SVI:
    """Raw SVI parameters of one expiry's smile (total variance)."""

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    def total_variance(self, k: np.ndarray) -> np.ndarray:
        """w(k) at log-moneyness ``k``."""
        x = np.asarray(k, dtype=np.float64) - self.m
        return self.a + self.b * (self.rho * x + np.sqrt(x * x + self.sigma**2))

    def vol(self, k: np.ndarray, t: float) -> np.ndarray:
        """Implied volatility at log-moneyness ``k`` for maturity ``t`` years."""
        return np.sqrt(np.maximum(self.total_variance(k), 0.0) / t)

    def density_g(self, k: np.ndarray) -> np.ndarray:
        """Gatheral's g(k); the smile is free of butterfly arbitrage where g >= 0."""
        x = np.asarray(k, dtype=np.float64) - self.m
        root = np.sqrt(x * x + self.sigma**2)
        w = np.maximum(self.total_variance(k), 1e-300)
        w1 = self.b * (self.rho + x / root)
        w2 = self.b * self.sigma**2 / root**3
        return (1 - np.asarray(k) * w1 / (2 * w)) ** 2 - w1**2 / 4 * (1 / w + 0.25) + w2 / 2


@dataclass(frozen=True, slots=True)
class SVIFit:
    """Result of fitting one smile."""

    params: SVI
    rmse: float  # vega-weighted RMSE of implied vol (decimal vol)
    n: int
    success: bool


def _to_raw(x: np.ndarray) -> SVI:
    v_min, s_left, s_right, m, sigma = (float(v) for v in x)
    b = 0.5 * (s_left + s_right)
    rho = (s_right - s_left) / (s_left + s_right) if b > 0 else 0.0
    return SVI(v_min - sigma * math.sqrt(s_left * s_right), b, rho, m, sigma)


def _w_and_grad(x: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Total variance in fit coordinates and its gradient, using ``b sqrt(1 - rho**2) =
    sqrt(s_left s_right)`` and ``b rho = (s_right - s_left) / 2``."""
    v_min, sl, sr, m, sigma = x
    d = k - m
    root = np.sqrt(d * d + sigma * sigma)
    geo = math.sqrt(sl * sr)
    w = v_min - sigma * geo + 0.5 * (sr - sl) * d + 0.5 * (sl + sr) * root
    half_l = 0.5 * math.sqrt(sr / max(sl, 1e-12))  # d geo / d sl
    half_r = 0.5 * math.sqrt(sl / max(sr, 1e-12))
    grad = np.empty((k.size, 5))
    grad[:, 0] = 1.0
    grad[:, 1] = -sigma * half_l - 0.5 * d + 0.5 * root
    grad[:, 2] = -sigma * half_r + 0.5 * d + 0.5 * root
    grad[:, 3] = -0.5 * (sr - sl) - 0.5 * (sl + sr) * d / root
    grad[:, 4] = -geo + 0.5 * (sl + sr) * sigma / root
    return w, grad


def _starts(k: np.ndarray, w: np.ndarray) -> list[np.ndarray]:
    i = int(np.argmin(w))
    span = float(k.max() - k.min()) or 0.1
    left = (w[0] - w[i]) / max(k[i] - k[0], 1e-6)
    right = (w[-1] - w[i]) / max(k[-1] - k[i], 1e-6)
    slopes = np.clip([left, right], 0.01, 1.9)
    base = [0.9 * w[i], slopes[0], slopes[1], k[i]]
    return [np.array([*base, s * span]) for s in (0.1, 0.4)]


def fit_svi(k: np.ndarray, iv: np.ndarray, t: float, weights: np.ndarray | None = None) -> SVIFit:
    """Fit a raw SVI smile to implied vols by weighted least squares (scipy TRF, bounded).

    Args:
        k: Log-moneyness ``ln(K/F)`` of the quotes.
        iv: Their implied volatilities (decimal).
        t: Maturity in years.
        weights: Non-negative weights (vega); uniform when None.

    Returns:
        The best of two starts; ``success`` is False with fewer than 5 quotes or no
        convergence (the parameters are then NaN).
    """
    order = np.argsort(k)
    k, iv = np.asarray(k, dtype=np.float64)[order], np.asarray(iv, dtype=np.float64)[order]
    wt = np.ones_like(k) if weights is None else np.asarray(weights, dtype=np.float64)[order]
    nan = SVI(*(math.nan,) * 5)
    if k.size < 5 or t <= 0 or not np.all(np.isfinite(iv)):
        return SVIFit(nan, math.nan, int(k.size), False)
    wt = wt / wt.sum() if wt.sum() > 0 else np.full_like(k, 1.0 / k.size)
    sqrt_wt = np.sqrt(wt)
    w_mkt = iv * iv * t

    def residuals(x: np.ndarray) -> np.ndarray:
        w = _w_and_grad(x, k)[0]
        return sqrt_wt * (np.sqrt(np.maximum(w, 0.0) / t) - iv)

    def jacobian(x: np.ndarray) -> np.ndarray:
        w, grad = _w_and_grad(x, k)
        scale = sqrt_wt / (2.0 * np.sqrt(np.maximum(w, 1e-14) * t))
        return grad * scale[:, None]

    span = float(k.max() - k.min()) or 0.1
    lower = [0.0, 0.0, 0.0, k.min() - span, 1e-4 * span]
    upper = [2.0 * w_mkt.max(), MAX_SLOPE, MAX_SLOPE, k.max() + span, 2.0 * span + 1.0]
    best = None
    for x0 in _starts(k, w_mkt):
        x0 = np.clip(x0, np.add(lower, 1e-12), np.subtract(upper, 1e-12))
        res = least_squares(
            residuals, x0, jac=jacobian, bounds=(lower, upper), method="trf", x_scale="jac"
        )
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    rmse = float(np.sqrt(2.0 * best.cost))  # residuals carry normalized weights
    return SVIFit(_to_raw(best.x), rmse, int(k.size), bool(best.success))


def butterfly_free(params: SVI, k: np.ndarray, tol: float = 1e-9) -> bool:
    """True when Gatheral's g(k) >= 0 over ``k`` (no butterfly arbitrage there)."""
    return bool(np.all(params.density_g(k) >= -tol))


def strike_at_delta(
    params: SVI, t: float, target: float, q: float = 0.0, call: bool = True
) -> tuple[float, float]:
    """Log-moneyness and vol where the BSM delta (spot, with yield q) equals ``target``.

    ``target`` is positive for calls (e.g. 0.25) and negative for puts (e.g. -0.25); found on a
    dense grid of ±6 ATM standard deviations with linear interpolation.
    """
    from scipy.special import ndtr

    sd = math.sqrt(max(float(params.total_variance(np.array([0.0]))[0]), 1e-12))
    k = np.linspace(-6 * sd, 6 * sd, 1201)
    root = np.sqrt(np.maximum(params.total_variance(k), 1e-16))
    d1 = -k / root + 0.5 * root
    disc = math.exp(-q * t)
    delta = disc * ndtr(d1) if call else -disc * ndtr(-d1)  # decreasing in k either way
    k_star = float(np.interp(-target, -delta, k))
    return k_star, float(params.vol(np.array([k_star]), t)[0])
