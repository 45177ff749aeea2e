"""Fake Alpaca Trading API. Serves ``/v2/options/contracts`` (and one contract by symbol or id).

Extension point for the broker fake (orders, positions, account, clock): subclass and add routes,

    class BrokerFake(AlpacaTradingFake):
        def register_routes(self) -> None:
            super().register_routes()
            self.route("POST", r"/v2/orders", self.submit_order)
            self.route("GET", r"/v2/clock", self.clock)

keeping the shared key check, error bodies (401 ``40110000``), fault knobs and request log. Trading
responses send quantities and prices as strings, as the real API does.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from alpaca_improved_pipelines import calendar as cal
from tests.fakes.alpaca_market import AlpacaFake
from tests.fakes.base import Request, Response, paginate
from tests.fakes.market import OptionQuote

LISTED_UNDERLYINGS = ("SPY", "QQQ", "IWM", "AAPL", "MSFT", "NVDA", "AMZN", "JPM", "XOM", "TSLA")
NAMESPACE = uuid.UUID("6f1c1d1e-4c1a-4b8e-9a57-0c3c0b7a11ce")


class AlpacaTradingFake(AlpacaFake):
    """The Trading API fake; option contracts now, broker endpoints added by subclasses."""

    def register_routes(self) -> None:
        super().register_routes()
        self.route("GET", r"/v2/options/contracts", self.contracts)
        self.route("GET", r"/v2/options/contracts/(?P<ref>[^/]+)", self.contract)

    def error_body(self, status: int, fault: str | None) -> Any:
        if status == 401:
            return {"code": 40110000, "message": "request is not authorized"}
        if status == 403 and fault != "403_plan":
            return {"code": 40310000, "message": "insufficient buying power"}
        return super().error_body(status, fault)

    def _listed(self) -> list[OptionQuote]:
        as_of = self.market.as_of
        return [q for u in sorted(LISTED_UNDERLYINGS) for q in self.market.chain(u, as_of)]

    def contracts(self, req: Request) -> Response:
        limit = self.limit(req, 100, 10_000)
        if isinstance(limit, Response):
            return limit
        wanted = set((req.param("underlying_symbols") or "").split(",")) - {""}
        quotes = (
            [q for u in sorted(wanted) for q in self.market.chain(u, self.market.as_of)]
            if wanted
            else self._listed()
        )
        for name, keep in (
            ("expiration_date_gte", lambda q, d: q.expiry >= d),
            ("expiration_date_lte", lambda q, d: q.expiry <= d),
            ("expiration_date", lambda q, d: q.expiry == d),
        ):
            if value := req.param(name):
                day = dt.date.fromisoformat(value)
                quotes = [q for q in quotes if keep(q, day)]
        if kind := req.param("type"):
            quotes = [q for q in quotes if q.right == kind[0].upper()]
        page, token = paginate(quotes, req, limit, req.param("page_token"))
        return Response(
            {
                "option_contracts": [wire_contract(q, self.market.as_of) for q in page],
                "next_page_token": token,
            }
        )

    def contract(self, req: Request) -> Response:
        ref = req.match["ref"]
        for q in self._listed():
            if ref in (q.occ, str(uuid.uuid5(NAMESPACE, q.occ))):
                return Response(wire_contract(q, self.market.as_of))
        return Response({"code": 40410000, "message": "asset not found"}, 404)


def wire_contract(q: OptionQuote, as_of: dt.date) -> dict[str, Any]:
    """One contract in the Trading API's shape (strings for strike, size, OI and close)."""
    prev = cal.previous_session(as_of).isoformat()
    kind = "call" if q.right == "C" else "put"
    strike = f"{q.strike:g}"
    return {
        "id": str(uuid.uuid5(NAMESPACE, q.occ)),
        "symbol": q.occ,
        "name": f"{q.underlying} {q.expiry:%b %d %Y} {strike} {kind.title()}",
        "status": "active",
        "tradable": True,
        "expiration_date": q.expiry.isoformat(),
        "root_symbol": q.underlying,
        "underlying_symbol": q.underlying,
        "underlying_asset_id": str(uuid.uuid5(NAMESPACE, q.underlying)),
        "type": kind,
        "style": "american",
        "strike_price": strike,
        "size": "100",
        "open_interest": str(q.open_interest),
        "open_interest_date": prev,
        "close_price": f"{(q.bid + q.ask) / 2:.2f}",
        "close_price_date": prev,
    }
