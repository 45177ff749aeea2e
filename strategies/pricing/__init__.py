"""Option pricing: Black-Scholes-Merton prices, Greeks and implied volatility, American options.

Everything is vectorized (numpy broadcasting over scalars, lists, arrays, pandas or polars
Series) and runs as parallel numba kernels cached on disk. Units: ``T`` in years, rates and
yields continuously compounded decimals, volatility a decimal; ``vega`` per 1.00 of vol,
``theta`` per year, ``rho`` per 1.00 of rate (see :func:`per_vol_point`, :func:`per_day`).
Prices within :data:`BOUND_RTOL` of a no-arbitrage bound are at the bound, on every CPU
(:func:`no_arbitrage_status`).

Example:
    >>> from strategies.pricing import bs_price, implied_vol
    >>> price = bs_price(S=100.0, K=105.0, T=30 / 365, r=0.04, sigma=0.25, q=0.01)
    >>> round(implied_vol(price, 100.0, 105.0, 30 / 365, 0.04, 0.01), 12)
    0.25
"""

from strategies.pricing.american import DEFAULT_STEPS, american_implied_vol, american_price
from strategies.pricing.black_scholes import Greeks, bs_greeks, bs_price, per_day, per_vol_point
from strategies.pricing.bounds import BOUND_RTOL, no_arbitrage_bounds, no_arbitrage_status
from strategies.pricing.implied_volatility import IVGreeks, IVStatus, implied_vol, iv_and_greeks

__all__ = [
    "BOUND_RTOL",
    "DEFAULT_STEPS",
    "Greeks",
    "IVGreeks",
    "IVStatus",
    "american_implied_vol",
    "american_price",
    "bs_greeks",
    "bs_price",
    "implied_vol",
    "iv_and_greeks",
    "no_arbitrage_bounds",
    "no_arbitrage_status",
    "per_day",
    "per_vol_point",
]
