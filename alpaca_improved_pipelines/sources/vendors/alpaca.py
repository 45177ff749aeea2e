"""Alpaca as a ``MarketDataSource``: stock bars, option contracts, option chains via alpaca-py."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import polars as pl
from alpaca.data.requests import OptionBarsRequest, OptionChainRequest, StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.models import OptionContractsResponse
from alpaca.trading.requests import GetOptionContractsRequest
from pydantic import Field, PrivateAttr, ValidationError

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.resources.sources import Timeframe
from alpaca_improved_pipelines.sources.vendors import parse
from alpaca_improved_pipelines.sources.vendors.alpaca_http import AlpacaHttp
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

OPTION_SYMBOLS_PER_REQUEST = 100  # keeps the query string well under URL length limits


def session_window(session: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[00:00, 23:59:59] New York of ``session`` as aware UTC datetimes (DST-correct)."""
    start = cal.midnight_new_york(session)
    end = cal.midnight_new_york(session + dt.timedelta(days=1)) - dt.timedelta(seconds=1)
    return start, end


class AlpacaSource(VendorSource):
    """Alpaca Market Data v2 (stocks) and v1beta1 (options) plus the Trading API's contracts.

    Keys come from ``ALPACA_API_KEY``/``ALPACA_SECRET_KEY`` when a client is first built;
    ``data_url``/``trading_url`` override the hosts (``ALPACA_DATA_URL``/``ALPACA_TRADING_URL``).
    """

    data_url: str | None = Field(default=None, description="Market-data base URL override.")
    trading_url: str | None = Field(default=None, description="Trading API base URL override.")
    feed: str = Field(default="sip", description="Stock feed: iex, sip, delayed_sip, ...")
    adjustment: str = Field(default="raw", description="raw, split, dividend or all.")
    options_feed: str = Field(default="indicative", description="indicative or opra.")
    page_limit: int = Field(default=10_000, description="Items per page (always sent).")
    api_key_var: str = Field(default="ALPACA_API_KEY", description="Env var with the key id.")
    secret_key_var: str = Field(default="ALPACA_SECRET_KEY", description="Env var, secret key.")
    requests_per_minute: int | None = Field(default=200, description="Client-side budget.")

    _http: AlpacaHttp | None = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return "alpaca"

    def _reset_clients(self) -> None:
        self._http = None

    def http(self) -> AlpacaHttp:
        """The instrumented alpaca-py clients (built on first use, keys read from env then)."""
        if self._http is None:
            self._http = AlpacaHttp(
                read_key(self.api_key_var, "alpaca"),
                read_key(self.secret_key_var, "alpaca"),
                self.data_url,
                self.trading_url,
                self.timeout_s,
                self._budget(None, read_key(self.api_key_var, "alpaca")),
                self._policy(),
                self._runtime,
                self.max_pages,
                self._count,
            )
        return self._http

    def _request(self, model: type, **kwargs: Any) -> dict[str, Any]:
        try:
            return model(**kwargs).to_request_fields()
        except ValidationError as err:
            bad = ", ".join(
                f"{'.'.join(map(str, e['loc']))}={e.get('input')!r}" for e in err.errors()
            )
            raise VendorConfigError(
                f"alpaca request rejected before sending: {bad} (check "
                "ALPACA_FEED / ALPACA_ADJUSTMENT / symbols)"
            ) from None

    def _merged_bars(
        self, client: Any, path: str, params: dict[str, Any], what: str
    ) -> dict[str, list[dict[str, Any]]]:
        merged: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for page in self.http().pages(client, path, params, "bars", what):
            if not isinstance(page, dict):
                raise PermanentVendorError(f"alpaca {what}: 'bars' is not an object")
            for sym, bars in page.items():
                merged[sym].extend(bars or [])
        return merged

    def stock_bars(
        self, symbols: tuple[str, ...], session: dt.date, timeframe: Timeframe
    ) -> pl.DataFrame:
        start, end = session_window(session)
        params = self._request(
            StockBarsRequest,
            symbol_or_symbols=list(symbols),
            start=start,
            end=end,
            timeframe=TimeFrame.Minute if timeframe == "1Min" else TimeFrame.Day,
            limit=self.page_limit,
            feed=self.feed,
            adjustment=self.adjustment,
        )
        what = f"{timeframe} stock bars {session.isoformat()}"
        try:
            merged = self._merged_bars(self.http().stock, "/stocks/bars", params, what)
        except PermanentVendorError as err:
            if self._plan_window(err, "stock_bars", session):
                return parse.alpaca_bars({}, adjustment=self.adjustment)
            raise
        frame, dropped = parse.dedupe_bars(
            parse.alpaca_bars(merged, adjustment=self.adjustment), f"alpaca {what}"
        )
        self._count("duplicates_dropped", dropped)
        frame = parse.restrict_to_session(frame, session, timeframe)
        return self._complete_bars(frame, symbols, session, timeframe)

    def option_contracts(self, underlying: str, session: dt.date) -> pl.DataFrame:
        """Listed contracts of ``underlying`` expiring on/after ``session`` (paginated by us)."""
        http = self.http()

        def fetch(token: str | None, n: int) -> tuple[Any, str | None]:
            req = GetOptionContractsRequest(
                underlying_symbols=[underlying],
                expiration_date_gte=session,
                limit=self.page_limit,
                page_token=token,
            )
            res = http.call(
                lambda: http.trading.get_option_contracts(req),
                f"option contracts {underlying} page {n}",
            )
            if not isinstance(res, OptionContractsResponse) or res.option_contracts is None:
                raise PermanentVendorError(
                    f"alpaca option contracts {underlying} page {n}: no 'option_contracts' in "
                    "the response; refusing to read it as 'no contracts'"
                )
            return res.option_contracts, res.next_page_token

        rows = [c for page in http.walk(fetch, f"option contracts {underlying}") for c in page]
        return parse.alpaca_option_contracts(rows)

    def option_chain(self, underlying: str, session: dt.date) -> pl.DataFrame:
        """End-of-day chain from live snapshots, joined with contracts and option bars.

        Snapshots are live, so only the most recent session can be served; an older session
        is refused with an error that says so.
        """
        if self._expected_empty("option_chain", session):
            return empty_chain()
        http = self.http()
        params = self._request(
            OptionChainRequest, underlying_symbol=underlying, feed=self.options_feed
        )
        params.pop("underlying_symbol")
        params["limit"] = min(self.page_limit, 1000)
        snaps: dict[str, Any] = {}
        for page in http.pages(
            http.option,
            f"/options/snapshots/{underlying}",
            params,
            "snapshots",
            f"option chain {underlying}",
        ):
            snaps.update(page or {})
        chain = parse.alpaca_option_snapshots(snaps, underlying, session)
        if chain.height == 0:
            raise PermanentVendorError(
                f"alpaca returned an empty option chain for {underlying} "
                f"on {session.isoformat()}: no listed options?"
            )
        require_snapshot_session(chain, session)
        contracts = self.option_contracts(underlying, session)
        bars = self._option_bars(chain.get_column("contract").to_list(), session)
        spot = self.stock_bars((underlying,), session, "1Day").get_column("close")[0]
        return (
            chain.drop("open_interest", "volume", "underlying_price")
            .join(contracts.select("contract", "open_interest"), on="contract", how="left")
            .join(bars, on="contract", how="left")
            .with_columns(
                pl.col("last").fill_null(pl.col("bar_close")),
                pl.col("volume").fill_null(0.0),
                pl.lit(spot).alias("underlying_price"),
            )
            .select(chain.columns)
        )

    def _option_bars(self, contracts: list[str], session: dt.date) -> pl.DataFrame:
        start, end = session_window(session)
        merged: dict[str, list[dict[str, Any]]] = {}
        for i in range(0, len(contracts), OPTION_SYMBOLS_PER_REQUEST):
            params = self._request(
                OptionBarsRequest,
                symbol_or_symbols=contracts[i : i + OPTION_SYMBOLS_PER_REQUEST],
                timeframe=TimeFrame.Day,
                start=start,
                end=end,
                limit=self.page_limit,
            )
            merged |= self._merged_bars(
                self.http().option, "/options/bars", params, f"option bars {session.isoformat()}"
            )
        bars = parse.restrict_to_session(parse.alpaca_bars(merged), session, "1Day")
        return bars.select(
            pl.col("symbol").alias("contract"), "volume", pl.col("close").alias("bar_close")
        )
