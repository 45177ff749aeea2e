"""Polygon as a ``MarketDataSource``: aggregates, options contracts, option chain snapshots."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
from pydantic import Field, PrivateAttr

from alpaca_improved_pipelines.resources.sources import Timeframe
from alpaca_improved_pipelines.sources.vendors import parse
from alpaca_improved_pipelines.sources.vendors.base import (
    VendorSource,
    empty_chain,
    require_snapshot_session,
)
from alpaca_improved_pipelines.sources.vendors.errors import (
    PermanentVendorError,
    VendorConfigError,
    read_key,
)
from alpaca_improved_pipelines.sources.vendors.polygon_http import PolygonHttp

DEFAULT_BASE = "https://api.polygon.io"
ADJUSTED = {"raw": False, "split": True}  # Polygon adjusts for splits only


def _aggs_empty(body: dict[str, Any]) -> bool:
    """Aggregates with nothing to return omit ``results`` but say so in the counts."""
    return body.get("status") in ("OK", "DELAYED") and body.get("resultsCount", -1) == 0


class PolygonSource(VendorSource):
    """Polygon REST via polygon-api-client 1.16.3 (the last release under the ``polygon`` name).

    The key comes from ``POLYGON_API_KEY`` when the client is first built; ``base_url``
    overrides the host (``POLYGON_BASE_URL``).
    """

    base_url: str = Field(default=DEFAULT_BASE, description="REST base URL.")
    adjustment: str = Field(default="raw", description="raw or split (Polygon's 'adjusted').")
    page_limit: int = Field(default=50_000, description="Aggregates per page (always sent).")
    api_key_var: str = Field(default="POLYGON_API_KEY", description="Env var with the key.")

    _http: PolygonHttp | None = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return "polygon"

    def _reset_clients(self) -> None:
        self._http = None

    def http(self) -> PolygonHttp:
        """The instrumented polygon client (built on first use, key read from env then)."""
        if self._http is None:
            self._http = PolygonHttp(
                read_key(self.api_key_var, "polygon"),
                self.base_url,
                self.timeout_s,
                self._budget(None, read_key(self.api_key_var, "polygon")),
                self._policy(),
                self._runtime,
                self.max_pages,
                self._count,
            )
        return self._http

    def _adjusted(self) -> bool:
        if self.adjustment not in ADJUSTED:
            raise VendorConfigError(
                f"adjustment {self.adjustment!r} is not available from Polygon; use raw or split"
            )
        return ADJUSTED[self.adjustment]

    def aggs(self, ticker: str, session: dt.date, timeframe: Timeframe) -> pl.DataFrame:
        """All aggregates of ``ticker`` on ``session``'s New York date (extended hours too)."""
        http = self.http()
        day = session.isoformat()
        first = lambda: http.client.list_aggs(  # noqa: E731
            ticker,
            1,
            "minute" if timeframe == "1Min" else "day",
            day,
            day,
            adjusted=self._adjusted(),
            sort="asc",
            limit=self.page_limit,
            raw=True,
        )
        rows = [
            r
            for page in http.pages(first, f"{timeframe} aggs {ticker} {day}", empty_ok=_aggs_empty)
            for r in page
        ]
        return parse.polygon_aggs(ticker, rows, adjustment=self.adjustment)

    def stock_bars(
        self, symbols: tuple[str, ...], session: dt.date, timeframe: Timeframe
    ) -> pl.DataFrame:
        frames = []
        for sym in sorted(symbols):
            try:
                frames.append(self.aggs(sym, session, timeframe))
            except PermanentVendorError as err:
                if self._plan_window(err, "stock_bars", session):
                    return parse.polygon_aggs(sym, [], adjustment=self.adjustment)
                raise
        frame, dropped = parse.dedupe_bars(pl.concat(frames), f"polygon {timeframe} bars")
        self._count("duplicates_dropped", dropped)
        frame = parse.restrict_to_session(frame, session, timeframe)
        return self._complete_bars(frame, symbols, session, timeframe)

    def option_contracts(self, underlying: str, session: dt.date) -> pl.DataFrame:
        """Contracts of ``underlying`` listed on ``session`` expiring on/after it (reference)."""
        http = self.http()
        first = lambda: http.client.list_options_contracts(  # noqa: E731
            underlying_ticker=underlying,
            as_of=session.isoformat(),
            expiration_date_gte=session.isoformat(),
            limit=1000,
            raw=True,
        )
        rows = [r for page in http.pages(first, f"option contracts {underlying}") for r in page]
        return parse.polygon_option_contracts(rows)

    def option_chain(self, underlying: str, session: dt.date) -> pl.DataFrame:
        """End-of-day chain from the (live) chain snapshot; older sessions are refused."""
        if self._expected_empty("option_chain", session):
            return empty_chain()
        http = self.http()
        first = lambda: http.client.list_snapshot_options_chain(  # noqa: E731
            underlying, params={"limit": 250}, raw=True
        )
        rows = [r for page in http.pages(first, f"option chain {underlying}") for r in page]
        chain = parse.polygon_option_snapshots(rows, underlying, session)
        if chain.height == 0:
            raise PermanentVendorError(
                f"polygon returned an empty option chain for "
                f"{underlying} on {session.isoformat()}: no options?"
            )
        require_snapshot_session(chain, session)
        if chain.get_column("underlying_price").null_count():
            spot = self.stock_bars((underlying,), session, "1Day").get_column("close")[0]
            chain = chain.with_columns(pl.col("underlying_price").fill_null(spot))
        return chain
