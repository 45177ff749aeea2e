"""Run configuration of the options assets: underlyings, rate curve, dividend yields, windows."""

from __future__ import annotations

import dagster as dg
import numpy as np
from pydantic import Field

from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.sources.synthetic_market import CATALOG
from alpaca_improved_pipelines.sources.synthetic_options import DEFAULT_RATE

# Optionable names chains are archived for by default (those present in the universe): the
# index ETFs plus the most liquid single-stock option markets.
DEFAULT_UNDERLYINGS = ("SPY", "QQQ", "IWM", "DIA", "AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "META")


class RatePoint(dg.Config):
    """One point of the risk-free curve: a continuously compounded rate at a tenor."""

    days: float = Field(ge=0, description="Tenor in calendar days.")
    rate: float = Field(ge=-0.05, le=0.5, description="Continuously compounded rate (decimal).")


class ChainConfig(dg.Config):
    """Run options for ``option_chains``."""

    underlyings: list[str] = Field(
        default_factory=list,
        description="Underlyings to snapshot; empty means the default option underlyings "
        "(index ETFs and large caps) that are in the universe.",
    )
    rate_curve: list[RatePoint] = Field(
        default_factory=lambda: [RatePoint(days=0.0, rate=DEFAULT_RATE)],
        description="Risk-free curve, linearly interpolated in tenor, flat beyond its ends "
        "(one point = a flat curve; the default matches the synthetic market's rate).",
    )
    dividend_yields: dict[str, float] = Field(
        default_factory=dict,
        description="Continuous dividend yield per underlying; missing names use the "
        "reference yield of the synthetic catalog (trailing yields of the real tickers) or 0.",
    )
    american_iv: bool = Field(
        default=True,
        description="Also solve the American implied volatility (Leisen-Reimer tree) of every "
        "mid, stored as iv_american beside the European iv and Greeks.",
    )


class SurfaceConfig(dg.Config):
    """Run options for ``vol_surface``."""

    rank_window: int = Field(
        default=252, ge=20, description="Trailing sessions for IV rank and IV percentile."
    )
    min_history: int = Field(
        default=20,
        ge=2,
        description="Prior vol_surface sessions needed in the window before IV rank and "
        "percentile are published (null and flagged short_history below it).",
    )
    min_quotes: int = Field(
        default=6, ge=5, description="Fewest usable out-of-the-money quotes to fit an expiry."
    )


def curve_rates(curve: list[RatePoint], t_years: np.ndarray) -> np.ndarray:
    """Rates of ``curve`` at ``t_years`` (linear in tenor, flat extrapolation).

    Raises:
        ConfigError: an empty curve or duplicate tenors.
    """
    if not curve:
        raise ConfigError("rate_curve is empty; give at least one {days, rate} point")
    points = sorted((p.days, p.rate) for p in curve)
    days = np.array([d for d, _ in points])
    if np.unique(days).size != days.size:
        raise ConfigError(f"rate_curve has duplicate tenors {days.tolist()}; keep one per tenor")
    return np.interp(np.asarray(t_years) * 365.0, days, np.array([r for _, r in points]))


def dividend_yield(config: ChainConfig, underlying: str) -> float:
    """The configured continuous dividend yield of ``underlying``."""
    if underlying in config.dividend_yields:
        return float(config.dividend_yields[underlying])
    prof = CATALOG.get(underlying)
    return prof.dividend_yield if prof is not None else 0.0


def resolve_underlyings(config: ChainConfig, universe: tuple[str, ...]) -> tuple[str, ...]:
    """The underlyings of a run: configured ones (must be in the universe) or the defaults."""
    if config.underlyings:
        chosen = tuple(dict.fromkeys(s.strip().upper() for s in config.underlyings))
        outside = [s for s in chosen if s not in universe]
        if outside:
            raise ConfigError(
                f"option underlyings {outside} are not in the universe {list(universe)}; add "
                "them to ALPACA_IMPROVED_SYMBOLS first"
            )
        return chosen
    chosen = tuple(s for s in universe if s in DEFAULT_UNDERLYINGS)
    if not chosen:
        raise ConfigError(
            f"none of the default option underlyings {list(DEFAULT_UNDERLYINGS)} is in the "
            f"universe {list(universe)}; set the underlyings run config"
        )
    return chosen
