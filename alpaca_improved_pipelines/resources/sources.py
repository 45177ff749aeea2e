"""Market-data sources as one resource interface; assets type-hint ``MarketDataSource``.

Implementations: ``SyntheticSource`` (embedded default: deterministic, no keys, no network);
vendor sources (Alpaca, Polygon) implement the same two methods and parse vendor payloads into
the lake's bar layout at the edge.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from typing import Literal

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.errors import SourceError
from alpaca_improved_pipelines.sources import synthetic_bars, synthetic_market, synthetic_options

Timeframe = Literal["1Min", "1Day"]


class MarketDataSource(dg.ConfigurableResource, ABC):
    """Interface every market-data source implements.

    Required: ``stock_bars``. Bars come back in the lake layout (``lake.tables.BAR_SCHEMA``),
    sorted by (symbol, ts), with ``source`` naming the provider; a source that cannot deliver
    every requested symbol raises rather than returning less.
    """

    @property
    @abstractmethod
    def name(self) -> str:
        """Short provider name recorded in the ``source`` column."""

    @abstractmethod
    def stock_bars(
        self, symbols: tuple[str, ...], session: dt.date, timeframe: Timeframe
    ) -> pl.DataFrame:
        """Bars of ``timeframe`` for ``symbols`` during ``session`` (regular hours)."""

    def validate_symbols(self, symbols: tuple[str, ...]) -> None:  # noqa: B027 - optional hook
        """Raise ConfigError for symbols this source cannot serve (default: accept all)."""

    def option_chain(self, underlying: str, session: dt.date) -> pl.DataFrame:
        """End-of-day option chain of ``underlying`` on ``session`` in ``CHAIN_RAW_SCHEMA`` layout.

        Optional: sources without option data raise SourceError.
        """
        raise SourceError(f"the {self.name} source does not provide option chains")


class SyntheticSource(MarketDataSource):
    """Deterministic synthetic market (no keys, no network); any seed gives a different market."""

    seed: int = 7
    option_rate: float = synthetic_options.DEFAULT_RATE  # flat rate the chains are priced with
    option_strikes_per_expiry: int = 0  # 0: the listed strike grid; > 0 forces a count

    @property
    def name(self) -> str:
        return "synthetic"

    def validate_symbols(self, symbols: tuple[str, ...]) -> None:
        synthetic_market.check_symbols(symbols)

    def stock_bars(
        self, symbols: tuple[str, ...], session: dt.date, timeframe: Timeframe
    ) -> pl.DataFrame:
        if timeframe == "1Min":
            return synthetic_bars.minute_bars(self.seed, symbols, session)
        return synthetic_bars.daily_bars(self.seed, symbols, session)

    def option_chain(self, underlying: str, session: dt.date) -> pl.DataFrame:
        synthetic_market.check_symbols((underlying,))
        spec = synthetic_options.ChainSpec(
            rate=self.option_rate, strikes_per_expiry=self.option_strikes_per_expiry
        )
        return synthetic_options.synthetic_chain(self.seed, underlying, session, spec)
