"""Fake Alpaca Market Data API: ``/v2/stocks/bars``, ``/v1beta1/options/bars``, option snapshots.

Wire format as alpaca-py and the docs show it (ALPACA_NOTES §1.8): bars keyed by symbol, RFC 3339
``t`` (nine fractional digits when not whole seconds), daily bars at 00:00 New York, one
``next_page_token`` that pages across symbols, ``limit`` 1..10000, optional Greeks/IV/trade.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from alpaca_improved_pipelines import calendar as cal
from tests.fakes.base import HTML_502, FakeServer, Request, Response, paginate
from tests.fakes.market import Bar, FakeMarket, OptionQuote

FEEDS = {"iex", "sip", "delayed_sip", "otc", "boats", "overnight"}
ADJUSTMENTS = {"raw", "split", "dividend", "all"}
TIMEFRAMES = {"1Min": "minute", "1Day": "day"}


def rfc3339(ns: int) -> str:
    """``2024-04-25T20:00:00.259610112Z`` (fraction only when the instant has one)."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(secs, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z" if frac else f"{base}Z"


def parse_time(value: str | None, default: dt.datetime) -> dt.datetime:
    if not value:
        return default
    if len(value) == 10:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def num(x: float) -> float | int:
    """Whole numbers as JSON integers, like the vendor sends volumes."""
    return int(x) if float(x).is_integer() else x


def wire_bar(b: Bar) -> dict[str, Any]:
    return {
        "t": rfc3339(b.ts_ns),
        "o": b.o,
        "h": b.h,
        "l": b.l,
        "c": b.c,
        "v": num(b.v),
        "n": b.n,
        "vw": b.vw,
    }


class AlpacaFake(FakeServer):
    """What every Alpaca fake shares: key headers, error bodies, 422 validation answers."""

    vendor = "alpaca"

    def __init__(
        self,
        market: FakeMarket | None = None,
        key: str = "fake-key-id",
        secret: str = "fake-secret",
        **kwargs: Any,
    ) -> None:
        self.market = market or FakeMarket()
        self.key, self.secret = key, secret
        super().__init__(**kwargs)

    def authorized(self, req: Request) -> bool:
        return (
            req.header("APCA-API-KEY-ID") == self.key
            and req.header("APCA-API-SECRET-KEY") == self.secret
        )

    def error_body(self, status: int, fault: str | None) -> Any:
        if status == 301:
            return b"<html><body>Moved Permanently</body></html>"
        if fault == "html":
            return HTML_502
        return {
            401: {"message": "unauthorized"},
            403: {"message": "subscription does not permit querying recent SIP data"}
            if fault == "403_plan"
            else {"message": "forbidden"},
            404: {"message": "Not Found"},
            429: {"message": "too many requests."},
        }.get(status, {"code": 50010000, "message": "internal server error"})

    @staticmethod
    def invalid(message: str) -> Response:
        return Response({"code": 42210000, "message": message}, 422)

    def limit(self, req: Request, default: int, maximum: int) -> int | Response:
        try:
            value = int(req.param("limit") or default)
        except ValueError:
            return self.invalid("invalid limit")
        return (
            value
            if 1 <= value <= maximum
            else self.invalid(f"invalid limit: must be between 1 and {maximum}")
        )


class AlpacaMarketFake(AlpacaFake):
    """Stock bars, option bars and option snapshots from ``FakeMarket``."""

    def register_routes(self) -> None:
        super().register_routes()
        self.route("GET", r"/v2/stocks/bars", self.stock_bars)
        self.route("GET", r"/v1beta1/options/bars", self.option_bars)
        self.route("GET", r"/v1beta1/options/snapshots", self.snapshots)
        self.route("GET", r"/v1beta1/options/snapshots/(?P<underlying>[A-Z.]+)", self.chain)

    def _window(self, req: Request) -> tuple[dt.datetime, dt.datetime] | Response:
        try:
            start = parse_time(req.param("start"), cal.midnight_new_york(self.market.as_of))
            end = parse_time(req.param("end"), dt.datetime.now(dt.UTC))
        except ValueError:
            return self.invalid("invalid start or end")
        return start, end

    def _paged_bars(self, req: Request, items: list[tuple[str, Bar]]) -> Response:
        limit = self.limit(req, 1000, 10_000)
        if isinstance(limit, Response):
            return limit
        page, token = paginate(items, req, limit, req.param("page_token"))
        bars: dict[str, list[dict[str, Any]]] = {}
        for sym, bar in page:
            bars.setdefault(sym, []).append(wire_bar(bar))
        return Response({"bars": bars, "next_page_token": token})

    def stock_bars(self, req: Request) -> Response:
        timeframe = TIMEFRAMES.get(req.param("timeframe") or "")
        if timeframe is None:
            return self.invalid("invalid timeframe")
        if (req.param("feed") or "sip") not in FEEDS:
            return self.invalid("invalid feed")
        if (req.param("adjustment") or "raw") not in ADJUSTMENTS:
            return self.invalid("invalid adjustment")
        window = self._window(req)
        if isinstance(window, Response):
            return window
        lo, hi = (int(t.timestamp() * 1e9) for t in window)
        ny = [cal.new_york_date(t) for t in window]
        items = [
            (sym, b)
            for sym in sorted(set((req.param("symbols") or "").split(",")) - {""})
            for b in self.market.bars(sym, timeframe, ny[0], ny[1])
            if lo <= b.ts_ns <= hi
        ]
        return self._paged_bars(req, items)

    def option_bars(self, req: Request) -> Response:
        if req.param("timeframe") != "1Day":
            return self.invalid("this fake serves 1Day option bars only")
        window = self._window(req)
        if isinstance(window, Response):
            return window
        days = self.market.sessions(*(cal.new_york_date(t) for t in window))
        items = []
        for occ in sorted(set((req.param("symbols") or "").split(",")) - {""}):
            for day in days:
                q = self.market.quote(occ, day)
                if q is not None and q.volume:
                    px = q.last if q.last is not None else round((q.bid + q.ask) / 2, 2)
                    ts = int(cal.midnight_new_york(day).timestamp()) * 1_000_000_000
                    items.append(
                        (occ, Bar(ts, px, px, px, px, float(q.volume), px, q.volume // 3 + 1))
                    )
        return self._paged_bars(req, items)

    def _snapshot_page(self, req: Request, quotes: list[OptionQuote]) -> Response:
        limit = self.limit(req, 100, 1000)
        if isinstance(limit, Response):
            return limit
        page, token = paginate(quotes, req, limit, req.param("page_token"))
        return Response({"snapshots": {q.occ: snapshot(q) for q in page}, "next_page_token": token})

    def snapshots(self, req: Request) -> Response:
        wanted = set((req.param("symbols") or "").split(",")) - {""}
        quotes = [q for occ in sorted(wanted) if (q := self.market.quote(occ, self.market.as_of))]
        return self._snapshot_page(req, quotes)

    def chain(self, req: Request) -> Response:
        quotes = self.market.chain(req.match["underlying"], self.market.as_of)
        kind = req.param("type")
        if kind in ("call", "put"):
            quotes = [q for q in quotes if q.right == kind[0].upper()]
        if gte := req.param("expiration_date_gte"):
            quotes = [q for q in quotes if q.expiry >= dt.date.fromisoformat(gte)]
        return self._snapshot_page(req, quotes)


def snapshot(q: OptionQuote) -> dict[str, Any]:
    """One contract in Alpaca's snapshot shape (Greeks, IV and trade optional)."""
    out: dict[str, Any] = {
        "latestQuote": {
            "ap": q.ask,
            "as": 10 + q.volume % 90,
            "ax": "C",
            "bp": q.bid,
            "bs": 5 + q.volume % 70,
            "bx": "N",
            "c": "A",
            "t": rfc3339(q.quote_ns),
        }
    }
    if q.last is not None:
        out["latestTrade"] = {
            "c": "I",
            "p": q.last,
            "s": 1,
            "t": rfc3339(q.quote_ns - 7_001),
            "x": "N",
        }
    if q.greeks is not None:
        out["greeks"] = dict(q.greeks)
        out["impliedVolatility"] = q.iv
    return out
