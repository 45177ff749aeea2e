"""Synthetic end-of-day option chains consistent with the synthetic stock paths.

For an underlying and a session: spot is that session's synthetic close; expiries are the next
weekly Fridays and the monthly/quarterly/LEAPS-style third Fridays (``option_expiries``); strikes
lie on a grid around spot (±40%, increments by price level). Volatility model:

* ATM variance term structure: the symbol's current GARCH variance (``daily_path``) mean-reverts
  to its long-run level (``profile.vol``) at the GARCH persistence rate, plus jump variance and a
  variance risk premium, so the curve is upward sloping in calm markets, inverted in stress.
* Smile per expiry: SSVI total variance (Gatheral-Jacquier) with negative ``rho`` (skew) and
  curvature ``eta``; every slice is a raw-SVI slice and the surface is free of static arbitrage
  (``eta (1 + |rho|) <= 2``).

Prices are American (Leisen-Reimer tree, ``strategies.pricing.american_price``) with the
profile's dividend yield and a flat rate. Bid/ask straddle the model price by a spread that
widens away from the money (in standardized moneyness) and, relatively, for cheap options; quotes
are rounded outward to the tick (0.01 below $3, 0.05 above, pennies for ETFs), so the mid is
within half a tick of the model price. Open interest peaks at the money and in the monthlies,
volume decays with days to expiry; ``last`` is null without volume; ``quote_ts`` is the close.

Vendor columns are filled, as a perfect-knowledge vendor would: ``vendor_iv`` is the generator's
model volatility and the Greeks are Black-Scholes-Merton at that vol in vendor units (theta per
calendar day, vega and rho per point), null where the bid is zero (vendors leave those out). The
agreement report of the ``option_chains`` asset therefore measures our IV-from-mid error.

Every draw comes from ``rng(seed, underlying, "chain", session_index << 128)``, so one chain
regenerated alone is identical to the same chain inside a backfill.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.lake.tables import CHAIN_RAW_COLUMNS, CHAIN_RAW_SCHEMA
from alpaca_improved_pipelines.sources import option_expiries
from alpaca_improved_pipelines.sources.synthetic_market import (
    OVERNIGHT_SHARE,
    TRADING_DAYS,
    daily_path,
    path_index,
    profile,
    rng,
)
from contracts.greeks import VENDOR_TO_LAKE
from strategies.pricing import american_price, bs_greeks

DEFAULT_RATE = 0.045  # flat continuously compounded rate of the synthetic market
ETFS = frozenset({"SPY", "QQQ", "IWM", "DIA"})
KAPPA = -math.log(0.98) * TRADING_DAYS  # GARCH persistence (alpha + beta) as a yearly rate
VARIANCE_RISK_PREMIUM = 1.10  # implied variance over expected realized variance
NICE_STEPS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0)
YEAR_SECONDS = 365.0 * 86400.0


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """Shape of a synthetic chain.

    Attributes:
        weeklies: Number of weekly Friday expiries.
        monthlies: Number of monthly/quarterly/LEAPS-style expiries (about a year for 6).
        moneyness: Strikes span spot * (1 ± moneyness).
        strikes_per_expiry: Force this many strikes per expiry (benchmarks); 0 uses the listed
            grid by price level.
        rate: Flat continuously compounded rate.
    """

    weeklies: int = 6
    monthlies: int = 6
    moneyness: float = 0.40
    strikes_per_expiry: int = 0
    rate: float = DEFAULT_RATE


@dataclass(frozen=True, slots=True)
class SmileModel:
    """The generator's volatility surface for one underlying and session (SSVI)."""

    spot: float
    rate: float
    dividend_yield: float
    v_now: float  # annualized variance today (GARCH, incl. jumps and premium)
    v_bar: float  # long-run annualized variance
    rho: float
    eta: float

    def atm_total_variance(self, t: np.ndarray) -> np.ndarray:
        """ATM total variance theta(T): variance mean-reverting at the GARCH rate."""
        x = np.maximum(KAPPA * t, 1e-12)
        return (self.v_bar + (self.v_now - self.v_bar) * (-np.expm1(-x)) / x) * t

    def total_variance(self, k: np.ndarray, t: np.ndarray) -> np.ndarray:
        """SSVI total variance at log-moneyness ``k = ln(K/F)`` and maturity ``t`` (years)."""
        theta = self.atm_total_variance(t)
        phi = self.eta / np.sqrt(theta * (1.0 + theta))  # power law, gamma = 1/2
        rho = self.rho
        return 0.5 * theta * (1 + rho * phi * k + np.sqrt((phi * k + rho) ** 2 + 1 - rho**2))

    def vol(self, strike: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Model implied volatility at ``strike`` and ``t``."""
        k = np.log(strike / self.spot) - (self.rate - self.dividend_yield) * t
        return np.sqrt(self.total_variance(k, t) / t)


def smile_model(
    seed: int,
    underlying: str,
    session: dt.date,
    rate: float,
    g: np.random.Generator | None = None,
) -> SmileModel:
    """The SSVI surface the generator prices ``underlying``'s chain on ``session`` with.

    Args:
        seed: Market seed.
        underlying: Symbol of the synthetic catalog.
        session: Trading session.
        rate: Flat continuously compounded rate.
        g: The chain's generator, positioned at its start (a fresh one when None); the smile
            parameters are its first two draws.
    """
    p = profile(underlying)
    i = path_index(session)
    path = daily_path(seed, underlying)
    jump_var = p.jump_rate * (4.0 * p.vol / 15.9) ** 2
    diffusive_now = path.intraday_sigma[i] ** 2 / (1.0 - OVERNIGHT_SHARE) * TRADING_DAYS
    g = g if g is not None else _rng(seed, underlying, session)
    etf = underlying in ETFS
    rho = float(np.clip((-0.70 if etf else -0.40) + 0.05 * g.standard_normal(), -0.95, -0.05))
    eta = float((1.0 if etf else 0.8) * math.exp(0.1 * g.standard_normal()))
    return SmileModel(
        spot=float(path.close[i]),
        rate=rate,
        dividend_yield=p.dividend_yield,
        v_now=float(VARIANCE_RISK_PREMIUM * (diffusive_now + jump_var)),
        v_bar=VARIANCE_RISK_PREMIUM * (p.vol**2 + jump_var),
        rho=rho,
        eta=min(eta, 1.95 / (1.0 + abs(rho))),  # keeps the SSVI surface butterfly-free
    )


def _rng(seed: int, underlying: str, session: dt.date) -> np.random.Generator:
    return rng(seed, underlying, "chain", counter=cal.session_index(session) << 128)


def strike_step(price: float, etf: bool) -> float:
    """Listed strike increment by price level (ETFs list $1 strikes)."""
    if etf:
        return 1.0
    return 0.5 if price < 25 else 1.0 if price < 100 else 2.5 if price < 250 else 5.0


def strikes(
    spot: float, etf: bool, moneyness: float, count: int = 0, sd: float = 0.0
) -> np.ndarray:
    """Strike grid around ``spot``, or exactly ``count`` strikes over ±moneyness.

    The listed grid spans spot * (1 ± moneyness), widened to 3 (puts) / 2.5 (calls) ATM
    standard deviations ``sd`` (= vol * sqrt(T)) for long-dated expiries, whose increments
    coarsen (x2, x5, x10) to keep at most twice the strikes of the ±moneyness grid.
    """
    if count:
        step = next((s for s in NICE_STEPS if s >= 2 * moneyness * spot / count), NICE_STEPS[-1])
        first = max(step, round(spot / step) * step - step * (count // 2))
        return np.round(first + step * np.arange(count), 3)
    base = strike_step(spot, etf)
    lo_px = spot * min(1 - moneyness, math.exp(-3.0 * sd))
    hi_px = spot * max(1 + moneyness, math.exp(2.5 * sd))
    cap = 2 * 2 * moneyness * spot / base
    step = next((base * m for m in (1, 2, 5, 10) if (hi_px - lo_px) / (base * m) <= cap), base * 10)
    lo = max(step, math.ceil(lo_px / step) * step)
    hi = math.floor(hi_px / step) * step
    return np.round(np.arange(lo, hi + step / 2, step), 3)


def _expiry_years(session: dt.date, expiries: list[dt.date]) -> np.ndarray:
    close = cal.session_open_close(session)[1]
    return np.array([(expiry_close(e) - close).total_seconds() / YEAR_SECONDS for e in expiries])


def expiry_close(expiry: dt.date) -> dt.datetime:
    """When an option expiring on ``expiry`` stops trading: that session's close (UTC)."""
    if expiry <= cal.CALENDAR_END and cal.is_session(expiry):
        return cal.session_open_close(expiry)[1].to_pydatetime()
    return dt.datetime(expiry.year, expiry.month, expiry.day, 16, tzinfo=cal.NEW_YORK)


def _quotes(
    g: np.random.Generator, price: np.ndarray, z: np.ndarray, etf: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Bid and ask around ``price``: wider away from the money and (relatively) when cheap."""
    tick = np.where(etf | (price < 3.0), 0.01, 0.05)
    base, rel = (0.01, 0.004) if etf else (0.03, 0.012)
    spread = (
        (base + rel * price)
        * (1.0 + 0.5 * np.minimum(np.abs(z), 4.0))
        * np.exp(0.15 * g.standard_normal(z.size))
    )
    bid = np.floor((price - spread / 2) / tick + 1e-9) * tick
    ask = np.ceil((price + spread / 2) / tick - 1e-9) * tick
    bid = np.maximum(np.round(bid, 2), 0.0)
    ask = np.round(np.maximum(ask, bid + tick), 2)
    return bid, ask


def _activity(
    g: np.random.Generator, z: np.ndarray, dte: np.ndarray, monthly: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Open interest and volume: peaked at the money, in the monthlies and at short DTE."""
    n = z.size
    shape = np.exp(-0.5 * z**2) + 0.005
    tenor = (1.0 - np.exp(-dte / 10.0)) * np.exp(-dte / 400.0) * np.where(monthly, 2.5, 1.0)
    oi = np.round(scale * shape * tenor * np.exp(0.4 * g.standard_normal(n)))
    turnover = 0.03 + 0.3 * np.exp(-dte / 15.0)
    volume = g.poisson(np.maximum(oi * turnover * np.exp(0.8 * g.standard_normal(n)), 0.0))
    return oi.astype(np.float64), volume.astype(np.float64)


def synthetic_chain(
    seed: int, underlying: str, session: dt.date, spec: ChainSpec | None = None
) -> pl.DataFrame:
    """The end-of-day chain of ``underlying`` on ``session`` in ``CHAIN_RAW_SCHEMA`` layout."""
    spec = spec or ChainSpec()
    cal.require_session(session, "option chain session")
    g = _rng(seed, underlying, session)
    model = smile_model(seed, underlying, session, spec.rate, g)
    etf = underlying in ETFS
    exps = option_expiries.expiries(session, spec.weeklies, spec.monthlies)
    years = _expiry_years(session, exps)
    sds = np.sqrt(model.atm_total_variance(years))
    grids = [strikes(model.spot, etf, spec.moneyness, spec.strikes_per_expiry, sd) for sd in sds]
    sizes = np.array([2 * gr.size for gr in grids])
    strike = np.concatenate([np.repeat(gr, 2) for gr in grids])
    is_call = np.tile(np.array([True, False]), strike.size // 2)
    t = np.repeat(years, sizes)
    expiry = np.repeat(np.array(exps, dtype="datetime64[D]"), sizes)
    exp_index = np.repeat(np.arange(len(exps)), sizes)
    dte = (expiry - np.datetime64(session, "D")).astype(np.float64)
    monthly = np.repeat(np.array([option_expiries.is_monthly(e) for e in exps]), sizes)
    r, q, s = model.rate, model.dividend_yield, model.spot
    vol = model.vol(strike, t)
    price = american_price(s, strike, t, r, vol, q, is_call)
    z = (np.log(strike / s) - (r - q) * t) / (vol * np.sqrt(t))
    bid, ask = _quotes(g, price, z, etf)
    oi, volume = _activity(g, z, dte, monthly, profile(underlying).adv * 4e-4)
    tick = np.where(etf | (price < 3.0), 0.01, 0.05)
    last_raw = np.round(price * np.exp(0.03 * g.standard_normal(price.size)) / tick) * tick
    last = np.where(volume > 0, np.clip(np.round(last_raw, 2), np.maximum(bid, tick), ask), np.nan)
    greeks = bs_greeks(s, strike, t, r, vol, q, is_call)
    quoted = bid > 0
    right = np.where(is_call, "C", "P")
    millis = np.round(strike * 1000).astype(np.int64)
    yymmdd = [e.strftime("%y%m%d") for e in exps]
    contract = [
        f"{underlying}{yymmdd[e]}{right[j]}{millis[j]:08d}" for j, e in enumerate(exp_index)
    ]
    close_ns = cal.session_open_close(session)[1].value

    def vendor(x: np.ndarray, scale: float = 1.0) -> pl.Series:
        return pl.Series(np.where(quoted, np.round(x / scale, 6), np.nan)).fill_nan(None)

    frame = pl.DataFrame(
        {
            "contract": contract,
            "underlying": underlying,
            "session": session,
            "expiry": expiry,
            "strike": strike,
            "right": right,
            "bid": bid,
            "ask": ask,
            "last": pl.Series(last).fill_nan(None),
            "volume": volume,
            "open_interest": oi,
            "underlying_price": s,
            "quote_ts": pl.Series([close_ns] * strike.size, dtype=pl.Int64),
            "vendor_iv": vendor(vol),
            "vendor_delta": vendor(greeks.delta),
            "vendor_gamma": vendor(greeks.gamma),
            "vendor_theta": vendor(greeks.theta, VENDOR_TO_LAKE["theta"]),
            "vendor_vega": vendor(greeks.vega, VENDOR_TO_LAKE["vega"]),
            "vendor_rho": vendor(greeks.rho, VENDOR_TO_LAKE["rho"]),
            "source": "synthetic",
        }
    )
    return frame.select(CHAIN_RAW_COLUMNS).cast(CHAIN_RAW_SCHEMA).sort("contract")  # type: ignore[arg-type]
