"""Fake Polygon REST API: aggregates, options contracts reference and option chain snapshots.

Wire format as the recorded vendor bodies show it (shared/vendor-fixtures/polygon): epoch-ms
``t`` on aggregates (daily at 00:00 New York), nanosecond ``last_updated``/``sip_timestamp`` on
snapshots, Greeks without rho, ``next_url`` with an opaque ``cursor`` on another host (the client
keeps only its path and query), and no ``results`` key at all when there is nothing to return.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from alpaca_improved_pipelines import calendar as cal
from tests.fakes.base import HTML_502, FakeServer, Request, Response, decode_token, paginate
from tests.fakes.market import FakeMarket, OptionQuote

NEXT_HOST = "https://api.polygon.io"  # next_url points at the vendor host, as it really does


class PolygonFake(FakeServer):
    """Aggregates, contracts and snapshots from ``FakeMarket`` behind a bearer key."""

    vendor = "polygon"

    def __init__(
        self, market: FakeMarket | None = None, key: str = "fake-polygon-key", **kwargs: Any
    ) -> None:
        self.market = market or FakeMarket()
        self.key = key
        super().__init__(**kwargs)

    def register_routes(self) -> None:
        super().register_routes()
        self.route(
            "GET",
            r"/v2/aggs/ticker/(?P<ticker>[^/]+)/range/(?P<mult>\d+)/"
            r"(?P<timespan>\w+)/(?P<frm>[^/]+)/(?P<to>[^/]+)",
            self.aggs,
        )
        self.route("GET", r"/v3/reference/options/contracts", self.contracts)
        self.route("GET", r"/v3/snapshot/options/(?P<underlying>[A-Z.]+)", self.chain)
        self.route(
            "GET",
            r"/v3/snapshot/options/(?P<underlying>[A-Z.]+)/(?P<occ>O:[A-Z0-9.]+)",
            self.one_snapshot,
        )

    def authorized(self, req: Request) -> bool:
        bearer = req.header("Authorization") == f"Bearer {self.key}"
        return bearer or req.param("apiKey") == self.key

    def error_body(self, status: int, fault: str | None) -> Any:
        rid = uuid.uuid4().hex
        if fault == "html" or status == 301:
            return HTML_502
        if status == 401:
            return {"status": "ERROR", "request_id": rid, "error": "Unknown API Key"}
        if status == 403:
            what = (
                "Your plan doesn't include this data timeframe."
                if fault == "403_plan"
                else "You are not entitled to this data."
            )
            return {
                "status": "NOT_AUTHORIZED",
                "request_id": rid,
                "message": f"{what} Please upgrade your plan at https://polygon.io/pricing",
            }
        if status == 429:
            return {
                "status": "ERROR",
                "request_id": rid,
                "error": "You've exceeded the maximum "
                "requests per minute, please wait or upgrade your subscription to continue.",
            }
        if status == 404:
            return {"status": "NOT_FOUND", "request_id": rid, "message": "Not found"}
        return {"status": "ERROR", "request_id": rid, "error": "Internal server error"}

    def _page(
        self,
        req: Request,
        items: list[Any],
        default: int,
        maximum: int,
        extra: dict[str, Any] | None = None,
    ) -> tuple[list[Any], str | None] | Response:
        cursor = req.param("cursor")
        state = decode_token(cursor)
        try:
            limit = int(state.get("limit") or req.param("limit") or default)
        except ValueError:
            limit = 0
        if not 1 <= limit <= maximum:
            return Response(
                {
                    "status": "ERROR",
                    "request_id": uuid.uuid4().hex,
                    "error": f"limit must be between 1 and {maximum}",
                },
                400,
            )
        page, token = paginate(items, req, limit, cursor, {**(extra or {}), "limit": limit})
        return page, (f"{NEXT_HOST}{req.path}?cursor={token}" if token else None)

    @staticmethod
    def _bound(value: str, end: bool) -> int:
        if value.isdigit():
            return int(value) * 1_000_000
        day = dt.date.fromisoformat(value) + dt.timedelta(days=1 if end else 0)
        return int(cal.midnight_new_york(day).timestamp() * 1e9) - (1 if end else 0)

    def aggs(self, req: Request) -> Response:
        m = req.match
        if m["mult"] != "1" or m["timespan"] not in ("minute", "day"):
            return Response(self.error_body(400, None) | {"error": "unsupported range"}, 400)
        try:
            lo, hi = self._bound(m["frm"], False), self._bound(m["to"], True)
        except ValueError:
            return Response(self.error_body(400, None) | {"error": "invalid from/to"}, 400)
        days = (cal.new_york_date(dt.datetime.fromtimestamp(x / 1e9, dt.UTC)) for x in (lo, hi))
        bars = [
            b for b in self.market.bars(m["ticker"], m["timespan"], *days) if lo <= b.ts_ns <= hi
        ]
        results = [
            {
                "v": float(b.v),
                "vw": b.vw,
                "o": b.o,
                "c": b.c,
                "h": b.h,
                "l": b.l,
                "t": b.ts_ns // 1_000_000,
                "n": b.n,
            }
            for b in bars
        ]
        paged = self._page(req, results, 5000, 50_000)
        if isinstance(paged, Response):
            return paged
        page, next_url = paged
        body: dict[str, Any] = {
            "ticker": m["ticker"],
            "queryCount": len(page),
            "resultsCount": len(page),
            "adjusted": req.param("adjusted", "true") == "true",
            "status": "OK",
            "request_id": uuid.uuid4().hex,
            "count": len(page),
        }
        if page:  # the vendor omits "results" when there are none
            body["results"] = page
        if next_url:
            body["next_url"] = next_url
        return Response(body)

    def _listing(
        self, body_rows: list[dict[str, Any]], req: Request, default: int, maximum: int
    ) -> Response:
        paged = self._page(req, body_rows, default, maximum)
        if isinstance(paged, Response):
            return paged
        page, next_url = paged
        body: dict[str, Any] = {"results": page, "status": "OK", "request_id": uuid.uuid4().hex}
        if next_url:
            body["next_url"] = next_url
        return Response(body)

    def contracts(self, req: Request) -> Response:
        state = decode_token(req.param("cursor"))
        underlying = state.get("u") or req.param("underlying_ticker") or ""
        as_of = dt.date.fromisoformat(
            state.get("as_of") or req.param("as_of") or self.market.as_of.isoformat()
        )
        quotes = self.market.chain(
            underlying, as_of if cal.is_session(as_of) else cal.previous_session(as_of)
        )
        if gte := state.get("gte") or req.param("expiration_date.gte"):
            quotes = [q for q in quotes if q.expiry >= dt.date.fromisoformat(gte)]
        rows = [
            {
                "cfi": "OCASPS" if q.right == "C" else "OPASPS",
                "contract_type": "call" if q.right == "C" else "put",
                "exercise_style": "american",
                "expiration_date": q.expiry.isoformat(),
                "primary_exchange": "BATO",
                "shares_per_contract": 100,
                "strike_price": q.strike,
                "ticker": f"O:{q.occ}",
                "underlying_ticker": q.underlying,
            }
            for q in quotes
        ]
        paged = self._page(
            req, rows, 10, 1000, {"u": underlying, "as_of": as_of.isoformat(), "gte": gte}
        )
        if isinstance(paged, Response):
            return paged
        page, next_url = paged
        body: dict[str, Any] = {"results": page, "status": "OK", "request_id": uuid.uuid4().hex}
        if next_url:
            body["next_url"] = next_url
        return Response(body)

    def chain(self, req: Request) -> Response:
        quotes = self.market.chain(req.match["underlying"], self.market.as_of)
        return self._listing([wire_snapshot(q) for q in quotes], req, 10, 250)

    def one_snapshot(self, req: Request) -> Response:
        q = self.market.quote(req.match["occ"].removeprefix("O:"), self.market.as_of)
        if q is None:
            return Response(self.error_body(404, None), 404)
        return Response(
            {"request_id": uuid.uuid4().hex, "results": wire_snapshot(q), "status": "OK"}
        )


def wire_snapshot(q: OptionQuote) -> dict[str, Any]:
    """One contract in Polygon's snapshot shape (Greeks without rho; IV and trade optional)."""
    mid = round((q.bid + q.ask) / 2, 4)
    out: dict[str, Any] = {
        "break_even_price": round(q.strike + mid if q.right == "C" else q.strike - mid, 4),
        "day": {
            "close": q.last or mid,
            "high": q.last or mid,
            "low": q.last or mid,
            "open": q.last or mid,
            "last_updated": q.quote_ns - q.quote_ns % 10**9,
            "volume": q.volume,
            "vwap": q.last or mid,
        },
        "details": {
            "contract_type": "call" if q.right == "C" else "put",
            "exercise_style": "american",
            "expiration_date": q.expiry.isoformat(),
            "shares_per_contract": 100,
            "strike_price": q.strike,
            "ticker": f"O:{q.occ}",
        },
        "fmv": mid,
        "last_quote": {
            "ask": q.ask,
            "ask_size": 10 + q.volume % 90,
            "bid": q.bid,
            "bid_size": 5 + q.volume % 70,
            "last_updated": q.quote_ns,
            "midpoint": mid,
            "timeframe": "REAL-TIME",
        },
        "open_interest": q.open_interest,
        "underlying_asset": {
            "change_to_break_even": 0.0,
            "last_updated": q.quote_ns,
            "price": q.spot,
            "ticker": q.underlying,
            "timeframe": "REAL-TIME",
        },
    }
    if q.last is not None:
        out["last_trade"] = {
            "price": q.last,
            "sip_timestamp": q.quote_ns - 7_001,
            "size": 1,
            "conditions": [209],
            "exchange": 309,
            "timeframe": "REAL-TIME",
        }
    if q.greeks is not None:
        out["greeks"] = {k: v for k, v in q.greeks.items() if k != "rho"}
        out["implied_volatility"] = q.iv
    return out
