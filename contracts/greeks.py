"""Greek units, and the one conversion between the lake's and the traders'.

Two conventions cross the process boundary:

* **Lake units** (the ``option_chains`` table, what ``strategies.pricing`` computes): per share,
  ``vega`` per 1.00 of volatility, ``theta`` per year, ``rho`` per 1.00 of rate.
* **Position units** (Alpaca's snapshot convention, used by ``decide()``, ``Book.greeks``, the
  live quotes and the risk engine's Greek caps): per share, ``vega`` per volatility point (0.01
  of IV), ``theta`` per calendar day. Vendors (the ``vendor_*`` columns) send these too.

So position = lake / :data:`VOL_POINTS_PER_UNIT` for vega and lake / :data:`DAYS_PER_YEAR` for
theta; delta and gamma are the same in both. The options backtest engine reads lake-unit chains
with ``OptionsBacktestConfig(vega_unit=LAKE_VEGA_UNIT, theta_unit=LAKE_THETA_UNIT)``.
"""

from __future__ import annotations

from typing import Final

import polars as pl

VOL_POINTS_PER_UNIT: Final = 100.0  # 1.00 of volatility is 100 vol points
DAYS_PER_YEAR: Final = 365.0  # theta is per calendar day, not per trading day
# OptionsBacktestConfig's names for the lake's units
LAKE_VEGA_UNIT: Final = "unit"
LAKE_THETA_UNIT: Final = "year"
# multiply a vendor's (position-unit) Greek by this to get the lake's unit
VENDOR_TO_LAKE: Final = {"theta": DAYS_PER_YEAR, "vega": VOL_POINTS_PER_UNIT, "rho": 100.0}


def vega_to_position(vega_lake: float) -> float:
    """Vega per 1.00 of vol (lake) -> per vol point (position units)."""
    return vega_lake / VOL_POINTS_PER_UNIT


def theta_to_position(theta_lake: float) -> float:
    """Theta per year (lake) -> per calendar day (position units)."""
    return theta_lake / DAYS_PER_YEAR


def chain_to_position_units(chain: pl.DataFrame) -> pl.DataFrame:
    """A lake-unit chain's ``vega`` and ``theta`` columns in position units (others untouched)."""
    return chain.with_columns(pl.col("vega") / VOL_POINTS_PER_UNIT, pl.col("theta") / DAYS_PER_YEAR)
