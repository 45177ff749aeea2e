"""Intraday option marks from a daily chain: each contract repriced at a new underlying spot.

The chain's quotes are the session's close; between closes the underlying moves. Each quote is
shifted by the Black-Scholes change of its model value from the chain's spot to the new one, at
the contract's own implied vol and time to expiry (r = q = 0: over minutes the carry is noise),
so the quoted spread and any smile the vendor priced stay; delta and gamma are recomputed at the
new spot. A contract without a usable IV moves by its delta. A streamed NBBO, when there is one,
replaces the repriced mark (:meth:`live.market.feed.StreamFeed.marks`).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from live.orders.reports import Quote
from strategies.pricing import bs_greeks, bs_price

NAN = float("nan")
DAYS_PER_YEAR = 365.0


def _col(chain: pl.DataFrame, name: str) -> np.ndarray:
    return chain.get_column(name).cast(pl.Float64).fill_null(NAN).to_numpy()


def reprice_chain(chain: pl.DataFrame, spot: float, ts: datetime) -> dict[str, Quote]:
    """Contract -> its quote with the underlying at ``spot`` (stamped ``ts``).

    Args:
        chain: One underlying's chain (:data:`strategies.models.CHAIN_COLUMNS`, position units).
        spot: The underlying's price now.
        ts: When ``spot`` was seen (the quotes' time).
    """
    if chain.is_empty():
        return {}
    s0 = _col(chain, "underlying_price")
    strike, iv = _col(chain, "strike"), _col(chain, "iv")
    years = np.maximum(_col(chain, "dte"), 0.0) / DAYS_PER_YEAR
    calls = (chain.get_column("right") == "C").to_numpy()
    delta, gamma = _col(chain, "delta"), _col(chain, "gamma")
    usable = np.isfinite(iv) & (iv > 0) & (years > 0) & np.isfinite(s0)
    new_value = np.asarray(bs_price(spot, strike, years, 0.0, iv, 0.0, calls))
    old_value = np.asarray(bs_price(s0, strike, years, 0.0, iv, 0.0, calls))
    moved = spot - np.where(np.isfinite(s0), s0, spot)
    by_delta = np.where(np.isfinite(delta), delta, 0.0) * moved
    shift = np.where(usable & np.isfinite(new_value - old_value), new_value - old_value, by_delta)
    greeks = bs_greeks(spot, strike, years, 0.0, iv, 0.0, calls)
    new_delta = np.where(usable, np.asarray(greeks.delta), delta)
    new_gamma = np.where(usable, np.asarray(greeks.gamma), gamma)
    bid, ask, mid = (np.maximum(_col(chain, c) + shift, 0.0) for c in ("bid", "ask", "mid"))
    vega, theta = _col(chain, "vega"), _col(chain, "theta")  # slow-moving: kept from the chain
    contracts = chain.get_column("contract").to_list()
    return {
        c: Quote(
            float(bid[k]),
            float(ask[k]),
            float(mid[k]),
            ts,
            (float(new_delta[k]), float(new_gamma[k]), float(vega[k]), float(theta[k])),
        )  # fmt: skip
        for k, c in enumerate(contracts)
    }
