"""A deterministic synthetic US equity market: daily paths and 1-minute bars for any session.

Every random draw comes from a counter-based generator (Philox) keyed by (seed, symbol, stream)
and positioned by the session's ordinal on the fixed NYSE calendar, so any single session
regenerated alone is identical to the same session produced inside a long backfill.

Model, per symbol: log returns = drift + beta * market factor + idiosyncratic shock + jumps, both
factor and shock GARCH(1,1) with Student-t innovations (volatility clustering, fat tails); each
day split into an overnight gap (where jumps land) and an intraday move. Minute bars are a
Brownian bridge from the open to the day's close with U-shaped volatility and volume, occasional
trading halts (missing minutes), cent-rounded prices, and early closes from the calendar.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.errors import ConfigError

REFERENCE_DAY = dt.date(2024, 1, 2)  # profile prices are the closes of this session
OVERNIGHT_SHARE = 0.2  # share of diffusive variance that arrives overnight
TRADING_DAYS = 252.0


@dataclass(frozen=True, slots=True)
class SymbolProfile:
    """Per-symbol parameters of the synthetic market."""

    price: float  # close on REFERENCE_DAY
    drift: float  # annual log drift
    vol: float  # annual total volatility
    beta: float  # loading on the market factor
    adv: float  # average daily volume (shares)
    jump_rate: float = 4.0  # expected overnight jumps per year
    dividend_yield: float = 0.0


MARKET_VOL = 0.16
CATALOG: dict[str, SymbolProfile] = {
    "SPY": SymbolProfile(472.65, 0.08, 0.16, 1.0, 75e6, 2.0, 0.013),
    "QQQ": SymbolProfile(402.40, 0.10, 0.21, 1.15, 45e6, 2.0, 0.006),
    "IWM": SymbolProfile(197.10, 0.06, 0.23, 1.15, 30e6, 2.0, 0.012),
    "DIA": SymbolProfile(376.90, 0.07, 0.15, 0.9, 3e6, 2.0, 0.017),
    "AAPL": SymbolProfile(185.64, 0.12, 0.26, 1.1, 55e6, 4.0, 0.005),
    "MSFT": SymbolProfile(370.87, 0.12, 0.25, 1.05, 25e6, 4.0, 0.008),
    "NVDA": SymbolProfile(48.17, 0.30, 0.50, 1.6, 400e6, 4.0, 0.0003),
    "AMZN": SymbolProfile(149.93, 0.12, 0.33, 1.2, 45e6, 4.0, 0.0),
    "GOOGL": SymbolProfile(138.17, 0.10, 0.30, 1.1, 28e6, 4.0, 0.0),
    "META": SymbolProfile(346.29, 0.14, 0.38, 1.25, 18e6, 4.0, 0.004),
    "TSLA": SymbolProfile(248.42, 0.10, 0.58, 1.7, 110e6, 5.0, 0.0),
    "JPM": SymbolProfile(170.30, 0.07, 0.24, 1.05, 9e6, 4.0, 0.024),
    "XOM": SymbolProfile(100.96, 0.05, 0.27, 0.8, 17e6, 4.0, 0.035),
    "KO": SymbolProfile(59.87, 0.04, 0.15, 0.55, 13e6, 4.0, 0.031),
    "AMD": SymbolProfile(138.58, 0.15, 0.52, 1.7, 60e6, 4.0, 0.0),
    "BAC": SymbolProfile(33.93, 0.06, 0.30, 1.2, 40e6, 4.0, 0.028),
}


def profile(symbol: str) -> SymbolProfile:
    """The profile of ``symbol`` or a ConfigError listing the symbols the synthetic market knows."""
    try:
        return CATALOG[symbol]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise ConfigError(
            f"unknown symbol {symbol!r} for the synthetic source; known symbols: {known}. "
            "Set ALPACA_IMPROVED_SYMBOLS to a subset of these or choose a vendor source."
        ) from None


def check_symbols(symbols: tuple[str, ...] | list[str]) -> None:
    """Raise a ConfigError for the first symbol the synthetic market does not know."""
    for s in symbols:
        profile(s)


def _key(seed: int, name: str, stream: str) -> int:
    digest = hashlib.blake2b(f"{seed}|{name}|{stream}".encode(), digest_size=16).digest()
    return int.from_bytes(digest, "little")


def rng(seed: int, name: str, stream: str, counter: int = 0) -> np.random.Generator:
    """A Philox generator keyed by (seed, name, stream), positioned at block ``counter``."""
    return np.random.Generator(np.random.Philox(key=_key(seed, name, stream), counter=counter))


def _garch(z: np.ndarray, target_var: float, alpha: float = 0.08, beta: float = 0.90) -> np.ndarray:
    """Conditional variances of a GARCH(1,1) driven by unit shocks ``z`` (returns h_t)."""
    omega = target_var * (1.0 - alpha - beta)
    h = np.empty_like(z)
    prev_h, prev_eps2 = target_var, target_var
    for t in range(z.size):
        prev_h = omega + alpha * prev_eps2 + beta * prev_h
        h[t] = prev_h
        prev_eps2 = prev_h * z[t] * z[t]
    return h


def _student_t(g: np.random.Generator, n: int, df: float = 5.0) -> np.ndarray:
    return g.standard_t(df, size=n) / np.sqrt(df / (df - 2.0))


@lru_cache(maxsize=4)
def _market(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = cal.all_sessions().size
    g = rng(seed, "__market__", "daily")
    z = _student_t(g, n)
    split = g.standard_normal(n)
    h = _garch(z, MARKET_VOL**2 / TRADING_DAYS)
    eps = np.sqrt(h) * z
    # Brownian-bridge split of each day's shock: overnight variance s*h, intraday (1-s)*h
    over = OVERNIGHT_SHARE * eps + np.sqrt(h * OVERNIGHT_SHARE * (1 - OVERNIGHT_SHARE)) * split
    return over, eps - over, h


@dataclass(frozen=True, slots=True)
class DailyPath:
    """Daily open, close and intraday volatility for one symbol over the whole calendar."""

    open: np.ndarray
    close: np.ndarray
    intraday_sigma: np.ndarray
    volume: np.ndarray


@lru_cache(maxsize=64)
def daily_path(seed: int, symbol: str) -> DailyPath:
    """The symbol's daily path over every session of the fixed calendar (cached)."""
    p = profile(symbol)
    n = cal.all_sessions().size
    m_over, m_intra, h_m = _market(seed)
    g = rng(seed, symbol, "daily")
    idio_var = max(p.vol**2 - (p.beta * MARKET_VOL) ** 2, (0.25 * p.vol) ** 2) / TRADING_DAYS
    z = _student_t(g, n)
    split = g.standard_normal(n)
    h_e = _garch(z, idio_var)
    eps = np.sqrt(h_e) * z
    e_over = OVERNIGHT_SHARE * eps + np.sqrt(h_e * OVERNIGHT_SHARE * (1 - OVERNIGHT_SHARE)) * split
    jumps = (g.random(n) < p.jump_rate / TRADING_DAYS) * g.normal(0.0, 4.0 * p.vol / 15.9, n)
    mu = (p.drift - 0.5 * p.vol**2) / TRADING_DAYS
    gap = OVERNIGHT_SHARE * mu + p.beta * m_over + e_over + jumps
    intra = (1 - OVERNIGHT_SHARE) * mu + p.beta * m_intra + (eps - e_over)
    log_close = np.cumsum(gap + intra)
    ref = cal.session_index(REFERENCE_DAY)
    close = p.price * np.exp(log_close - log_close[ref])
    open_ = close * np.exp(-intra)
    day_var = (p.beta**2) * h_m + h_e
    intraday_sigma = np.sqrt(day_var * (1 - OVERNIGHT_SHARE))
    surprise = np.abs(gap + intra) / np.sqrt(day_var)
    volume = p.adv * np.exp(0.25 * g.standard_normal(n) + 0.35 * (surprise - 0.8))
    return DailyPath(open_, close, intraday_sigma, volume)
