"""A primary source with a secondary that fills a session when the primary fails after retries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import dagster as dg
import polars as pl
from pydantic import PrivateAttr

from alpaca_improved_pipelines.errors import ConfigError, SourceError, TransientSourceError
from alpaca_improved_pipelines.resources.sources import MarketDataSource, Timeframe
from alpaca_improved_pipelines.sources.vendors.errors import (
    PermanentVendorError,
    TransientVendorError,
)


class FallbackSource(MarketDataSource):
    """Ask ``primary``; if it fails for a session (after its own retries), ask ``secondary``.

    Rows keep the ``source`` of whichever vendor delivered them, so provenance is in the data.
    Configuration errors (a missing key, a bad setting) never fall back: they would otherwise
    silently turn every partition into secondary data.
    """

    primary: MarketDataSource
    secondary: MarketDataSource

    _fallbacks: list[str] = PrivateAttr(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.primary.name} (fallback {self.secondary.name})"

    @property
    def fallbacks(self) -> list[str]:
        """One line per session that the secondary filled, with the primary's error."""
        return list(self._fallbacks)

    def validate_symbols(self, symbols: tuple[str, ...]) -> None:
        self.primary.validate_symbols(symbols)

    def _either(
        self,
        what: str,
        call_primary: Callable[[], pl.DataFrame],
        call_secondary: Callable[[], pl.DataFrame],
    ) -> pl.DataFrame:
        log = dg.get_dagster_logger()
        try:
            frame = call_primary()
        except ConfigError:
            raise
        except SourceError as first:
            note = f"{what}: {self.primary.name} failed ({first}); using {self.secondary.name}"
            log.warning(note)
            self._fallbacks.append(note)
            try:
                return call_secondary()
            except SourceError as second:
                message = (
                    f"{what}: both sources failed. {self.primary.name}: {first} | "
                    f"{self.secondary.name}: {second}"
                )
                if isinstance(first, TransientSourceError) or isinstance(
                    second, TransientSourceError
                ):
                    raise TransientVendorError(message) from second
                raise PermanentVendorError(message) from second
        if frame.height:
            return frame
        # An expected empty for the primary (e.g. before its history starts) may be data for
        # the secondary; if the secondary has nothing or fails, the primary's answer stands.
        try:
            other = call_secondary()
        except SourceError as err:
            log.info(f"{what}: {self.primary.name} has no data; {self.secondary.name}: {err}")
            return frame
        if other.height:
            note = f"{what}: {self.primary.name} has no data; filled from {self.secondary.name}"
            log.warning(note)
            self._fallbacks.append(note)
            return other
        return frame

    def stock_bars(
        self, symbols: tuple[str, ...], session: dt.date, timeframe: Timeframe
    ) -> pl.DataFrame:
        return self._either(
            f"{timeframe} bars {session.isoformat()}",
            lambda: self.primary.stock_bars(symbols, session, timeframe),
            lambda: self.secondary.stock_bars(symbols, session, timeframe),
        )

    def option_chain(self, underlying: str, session: dt.date) -> pl.DataFrame:
        return self._either(
            f"option chain {underlying} {session.isoformat()}",
            lambda: self.primary.option_chain(underlying, session),
            lambda: self.secondary.option_chain(underlying, session),
        )
