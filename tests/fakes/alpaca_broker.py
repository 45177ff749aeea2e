"""A local fake of Alpaca's Trading API for the live runner (127.0.0.1, ephemeral port, threaded).

Serves ``/v2/orders`` (POST, GET, DELETE, ``:by_client_order_id``, PATCH replace),
``/v2/positions``, ``/v2/account``, ``/v2/clock`` and ``/v2/account/activities``; validates like
Alpaca (ALPACA_NOTES §1.4/§1.7: duplicate id -> 422 40010001, mleg shape, whole contracts, TIF,
no extended hours or notional for options, buying power -> 403 40310000); sends numerics as
strings; never answers 3xx unless the ``301`` knob asks for it.

Faults are per request, queued or sticky on ``"METHOD /path-prefix"`` through the control API::

    fake.queue_faults("POST /v2/orders", ["504@commit"])   # the order IS created, then 504
    fake.set_fault("GET /v2/positions", "500")             # every matching request

Kinds: ``429`` (with X-Ratelimit-* reset headers), ``500``, ``504``, ``html502``, ``malformed``
(truncated JSON), ``empty`` (``{}`` with 200), ``reset`` (connection dropped), ``timeout`` (answer
after ``timeout_s``), ``301``. Suffix ``@commit`` applies the fault *after* the request changed
state (the order exists, the client just cannot know).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from strategies.models import OPTION_MULTIPLIER
from tests.fakes.base import HTML_502, Request, Response

OCC = re.compile(r"^[A-Z0-9]{1,6}\d{6}[CP]\d{8}$")
TERMINAL = {"filled", "canceled", "expired", "replaced", "rejected"}
FAULTS = {"429", "500", "504", "html502", "malformed", "empty", "reset", "timeout", "301"}


def _err(status: int, code: int, message: str, **extra: Any) -> Response:
    return Response({"code": code, "message": message, **extra}, status)


def _s(x: float | None) -> str | None:
    return None if x is None else f"{x:.10g}"


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"  # 9 digits, like Alpaca


class FakeAlpacaBroker:
    """The fake; ``orders``/``positions``/``cash`` are inspectable, the knobs below settable."""

    def __init__(
        self,
        api_key: str = "FAKEKEYID",
        secret_key: str = "FAKESECRET",
        cash: float = 100_000.0,
        option_tifs: frozenset[str] = frozenset({"day", "gtc"}),
        timeout_s: float = 1.5,
    ) -> None:
        self.keys = (api_key, secret_key)
        self.cash, self.last_equity = cash, cash
        self.option_tifs, self.timeout_s = option_tifs, timeout_s
        self.reset_after_s = 1.0
        self.prices: dict[str, float] = {}
        self.auto_fill, self.partial_first = True, False
        # called with (event, wire order, fill details or None) on every order change: the
        # trade-update stream fake (tests/fakes/alpaca_stream.py) publishes through this
        self.listeners: list[Any] = []
        self.orders: dict[str, dict[str, Any]] = {}  # id -> wire order (insertion = time order)
        self.submitted: dict[str, datetime] = {}  # id -> exact submission time
        self.by_cid: dict[str, str] = {}
        self.positions: dict[str, list[Any]] = {}  # symbol -> [qty, avg, asset_class]
        self.activities: list[dict[str, Any]] = []
        self.market_ts: datetime | None = None  # fixed /v2/clock timestamp (None: real time)
        self.is_open, self.date_skew_s = True, 0.0
        self.rate_limit, self.rate_window_s = 10_000, 60.0
        self.requests: list[tuple[float, str, str]] = []  # (time, method, path)
        self.throttled: list[tuple[float, float]] = []  # (time of a 429, its reset epoch)
        self.errors: list[str] = []
        self._sent: deque[float] = deque()
        self._queued: dict[str, deque[str]] = {}
        self._sticky: dict[str, str] = {}
        self._last_ts = datetime.now(UTC)
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- control API ---------------------------------------------------------------------------
    def queue_faults(self, route: str, faults: list[str]) -> None:
        """Apply ``faults`` ("ok" = none) to the next requests matching ``route``."""
        bad = {f.split("@")[0] for f in faults} - FAULTS - {"ok"}
        if bad:
            raise ValueError(f"unknown faults {sorted(bad)}")
        with self._lock:
            self._queued.setdefault(route, deque()).extend(faults)

    def set_fault(self, route: str, fault: str | None) -> None:
        """Apply ``fault`` to every request matching ``route`` (None clears)."""
        with self._lock:
            self._sticky.pop(route, None) if fault is None else self._sticky.update({route: fault})

    def orders_with_cid(self, cid: str) -> list[dict[str, Any]]:
        """Orders (0 or 1) carrying client order id ``cid``."""
        return [o for o in self.orders.values() if o["client_order_id"] == cid]

    def fill(self, cid: str, qty: float | None = None, price: float | None = None) -> None:
        """Fill (part of) an open order now, at ``price`` or the current price."""
        with self._lock:
            self._fill(self.orders[self.by_cid[cid]], qty, price)

    def seed_orders(self, n: int, prefix: str = "web", same_ts: int = 1) -> list[str]:
        """Store ``n`` open orders (groups of ``same_ts`` share a submission time)."""
        cids = []
        with self._lock:
            for k in range(n):
                cid = f"{prefix}-{k:05d}"
                order = _wire(
                    self,
                    {
                        "symbol": "SPY",
                        "side": "buy",
                        "type": "limit",
                        "time_in_force": "day",
                        "qty": 1,
                        "limit_price": 1.0,
                    },
                    cid,
                )
                self.orders[order["id"]], self.by_cid[cid] = order, order["id"]
                ts = self.now() if k % same_ts == 0 else ts  # noqa: F821 - set on k == 0
                self.submitted[order["id"]], order["submitted_at"] = ts, _ts(ts)
                cids.append(cid)
        return cids

    def expire(self, symbol: str, underlying_price: float) -> None:
        """Expire an option position: exercise/assign if ITM by >= $0.01, else expire."""
        with self._lock:
            qty = self.positions.pop(symbol)[0]
            right, strike = symbol[-9], int(symbol[-8:]) / 1000
            itm = (underlying_price - strike if right == "C" else strike - underlying_price) >= 0.01
            kind = ("OPEXC" if qty > 0 else "OPASN") if itm else "OPEXP"
            if itm:
                root = symbol[:-15]
                shares = qty * OPTION_MULTIPLIER * (1 if right == "C" else -1)
                self._book(root, shares, strike, "us_equity")
            day = date(2000 + int(symbol[-15:-13]), int(symbol[-13:-11]), int(symbol[-11:-9]))
            self.activities.append(
                {
                    "id": f"{day:%Y%m%d}000000000::{uuid.uuid4()}",
                    "activity_type": kind,
                    "date": day.isoformat(),
                    "net_amount": "0",
                    "symbol": symbol,
                    "qty": _s(abs(qty)) if kind != "OPEXP" else _s(qty),
                    "status": "executed",
                }
            )

    def emit(self, event: str, order: dict[str, Any], fill: dict[str, Any] | None = None) -> None:
        """Tell every listener about an order change."""
        for listener in self.listeners:
            listener(event, order, fill)

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeAlpacaBroker:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Handler,), {"fake": self}))
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeAlpacaBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch ------------------------------------------------------------------------------
    def _fault(self, method: str, path: str) -> str | None:
        key = f"{method} {path}"
        with self._lock:
            for route, queue in self._queued.items():
                if queue and key.startswith(route):
                    fault = queue.popleft()
                    return None if fault == "ok" else fault
            return next((f for r, f in self._sticky.items() if key.startswith(r)), None)

    def rate_headers(self) -> dict[str, str]:
        now = time.time()
        with self._lock:
            while self._sent and self._sent[0] <= now - self.rate_window_s:
                self._sent.popleft()
            reset = (self._sent[0] if self._sent else now) + self.rate_window_s
            remaining = max(self.rate_limit - len(self._sent), 0)
        return {
            "X-Ratelimit-Limit": str(self.rate_limit),
            "X-Ratelimit-Remaining": str(remaining),
            "X-Ratelimit-Reset": str(int(reset + 0.999 + self.date_skew_s)),
        }

    def dispatch(self, req: Request, body: bytes) -> Response | str:
        """One response, or ``"reset"``/``"timeout"`` for connection-level faults."""
        with self._lock:
            self.requests.append((time.time(), req.method, req.path))
            over = (
                len(self._sent) >= self.rate_limit
                and self._sent[0] > time.time() - self.rate_window_s
            )
            if not over:
                self._sent.append(time.time())
        fault = self._fault(req.method, req.path)
        kind, after = (fault or "").partition("@")[::2]
        if over or kind == "429":  # a 429 fault resets after reset_after_s, a full window later
            with self._lock:
                reset = (
                    time.time() + self.reset_after_s
                    if not over
                    else self._sent[0] + self.rate_window_s
                )
                self.throttled.append((time.time(), reset))
            return Response(
                {"message": "too many requests."},
                429,
                {"X-Ratelimit-Reset": str(int(reset + 0.999 + self.date_skew_s))},
            )
        if kind and not after:
            return self._faulted(kind)
        if (
            req.header("APCA-API-KEY-ID") != self.keys[0]
            or req.header("APCA-API-SECRET-KEY") != self.keys[1]
        ):
            return _err(401, 40110000, "request is not authorized")
        try:
            with self._lock:
                resp = self._route(req, body)
        except Exception as exc:  # a bug in the fake: answer 500 and keep it for asserts
            self.errors.append(f"{req.method} {req.path}: {exc!r}")
            return _err(500, 50010000, f"fake error {exc!r}")
        return self._faulted(kind) if kind else resp

    def _faulted(self, kind: str) -> Response | str:
        if kind in ("reset", "timeout"):
            return kind
        return {"500": _err(500, 50010000, "internal server error"),
                "504": Response(b"", 504, {"Content-Type": "text/plain"}),
                "html502": Response(HTML_502, 502, {"Content-Type": "text/html"}),
                "malformed": Response(b'{"id": "ab', 200), "empty": Response({}, 200),
                "301": Response({"message": "moved"}, 301, {"Location": "https://x.invalid/"}),
                }[kind]  # fmt: skip

    def _route(self, req: Request, body: bytes) -> Response:
        path, m = req.path, req.method
        one = re.fullmatch(r"/v2/orders/([^/:]+)", path)
        table: dict[tuple[str, str], Any] = {
            ("POST", "/v2/orders"): lambda: _submit(self, body),
            ("GET", "/v2/orders"): lambda: _list(self, req),
            ("DELETE", "/v2/orders"): lambda: _cancel_all(self),
            ("GET", "/v2/orders:by_client_order_id"): lambda: self._by_cid(req),
            ("GET", "/v2/positions"): lambda: Response(
                [_position(self, s, *p) for s, p in sorted(self.positions.items())]
            ),
            ("GET", "/v2/account"): lambda: Response(_account(self)),
            ("GET", "/v2/clock"): lambda: Response(_clock(self)),
            ("GET", "/v2/account/activities"): lambda: _activities(self, req),
        }
        if (m, path) in table:
            return table[(m, path)]()
        if one and one[1] in self.orders:
            order = self.orders[one[1]]
            if m == "GET":
                return Response(order)
            if m == "DELETE":
                return _cancel(self, order)
            if m == "PATCH":
                return _replace(self, order, body)
        return _err(404, 40410000, "order not found" if one else "endpoint not found")

    def _by_cid(self, req: Request) -> Response:
        oid = self.by_cid.get(req.param("client_order_id") or "")
        return Response(self.orders[oid]) if oid else _err(404, 40410000, "order not found")

    # -- book ----------------------------------------------------------------------------------
    def now(self) -> datetime:
        """Strictly increasing server time for order stamps."""
        self._last_ts = max(datetime.now(UTC), self._last_ts + timedelta(microseconds=1))
        return self._last_ts

    def _book(self, symbol: str, qty: float, price: float, asset_class: str) -> None:
        mult = OPTION_MULTIPLIER if asset_class == "us_option" else 1
        self.cash -= qty * price * mult
        held, avg, _ = self.positions.get(symbol, [0.0, 0.0, asset_class])
        total = held + qty
        if abs(total) < 1e-9:
            self.positions.pop(symbol, None)
            return
        avg = (
            price
            if held == 0 or held * total < 0
            else ((avg * held + price * qty) / total if held * qty > 0 else avg)
        )
        self.positions[symbol] = [total, avg, asset_class]

    def _fill(
        self, order: dict[str, Any], qty: float | None = None, price: float | None = None
    ) -> None:
        legs = order["legs"] or [order]
        prices = [
            price if price is not None and len(legs) == 1 else self.prices.get(leg["symbol"])
            for leg in legs
        ]
        if order["status"] in TERMINAL or any(p is None for p in prices):
            return
        left = float(order["qty"]) - float(order["filled_qty"])
        qty = min(left, qty if qty is not None else left)
        for leg, px in zip(legs, prices, strict=True):
            leg_qty = qty * float(leg.get("ratio_qty") or 1)
            self._book(
                leg["symbol"], leg_qty if leg["side"] == "buy" else -leg_qty, px, leg["asset_class"]
            )
            if leg is not order:
                _progress(leg, float(leg["filled_qty"]) + leg_qty, px, self.now())
        net = (
            prices[0]
            if len(legs) == 1
            else sum(
                (1 if leg["side"] == "buy" else -1) * float(leg["ratio_qty"]) * p
                for leg, p in zip(legs, prices, strict=True)
            )
        )
        _progress(order, float(order["filled_qty"]) + qty, net, self.now())
        position = self.positions.get(legs[0]["symbol"], [0.0])[0]
        self.emit(
            "fill" if order["status"] == "filled" else "partial_fill",
            order,
            {"price": _s(net), "qty": _s(qty), "position_qty": _s(position)},
        )


def _validate(fake: FakeAlpacaBroker, data: dict[str, Any]) -> str | None:
    """Alpaca's order rules (ALPACA_NOTES §1.7); the message of the first violated one."""
    qty, notional, legs = data.get("qty"), data.get("notional"), data.get("legs") or []
    if (qty is None) == (notional is None):
        return "exactly one of qty or notional is required"
    mleg = data.get("order_class") == "mleg"
    if mleg:
        symbols = [leg.get("symbol") for leg in legs]
        if not 2 <= len(legs) <= 4 or len(set(symbols)) != len(legs) or qty is None:
            return "mleg orders need qty and 2 to 4 legs with unique symbols"
        if any(not (leg.get("side") or leg.get("position_intent")) for leg in legs):
            return "each leg needs side or position_intent"
    elif not data.get("symbol") or not data.get("side"):
        return "symbol and side are required"
    options = mleg or bool(OCC.match(data.get("symbol") or ""))
    if options and data.get("type") not in ("market", "limit"):
        return "options orders must be market or limit"
    if data.get("type") == "limit" and data.get("limit_price") is None:
        return "limit_price is required for limit orders"
    if options:
        if notional is not None or float(qty) != int(float(qty)):
            return "qty must be a whole number of contracts for options (no notional)"
        if data.get("extended_hours"):
            return "extended hours are not supported for options"
        if data.get("time_in_force") not in fake.option_tifs:
            return f"time_in_force {data.get('time_in_force')} is not supported for options"
    return None


def _wire(fake: FakeAlpacaBroker, data: dict[str, Any], cid: str, leg: bool = False) -> dict:
    now = _ts(fake.now())
    symbol = data.get("symbol") or ""
    side = data.get("side") or (data.get("position_intent") or "").split("_")[0] or None
    option = bool(OCC.match(symbol))
    return {
        "id": str(uuid.uuid4()), "client_order_id": cid, "created_at": now, "updated_at": now,
        "submitted_at": now, "filled_at": None, "expired_at": None, "canceled_at": None,
        "failed_at": None, "replaced_at": None, "replaced_by": None, "replaces": None,
        "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, symbol)) if symbol else None,
        "symbol": symbol or None, "asset_class": ("us_option" if option else "us_equity")
        if symbol else None, "notional": _s(data.get("notional")),
        "qty": _s(float(data["qty"])) if data.get("qty") is not None else None,
        "filled_qty": "0", "filled_avg_price": None,
        "order_class": "simple" if leg else (data.get("order_class") or "simple"),
        "order_type": data.get("type"), "type": data.get("type"), "side": side,
        "time_in_force": data.get("time_in_force"), "limit_price": _s(data.get("limit_price")),
        "stop_price": None, "status": "new", "extended_hours": bool(data.get("extended_hours")),
        "legs": None, "position_intent": data.get("position_intent"),
        "ratio_qty": _s(float(data.get("ratio_qty") or 1)),
    }  # fmt: skip


def _debit(fake: FakeAlpacaBroker, order: dict[str, Any]) -> float:
    legs = order["legs"] or [order]
    total = 0.0
    for leg in legs:
        px = fake.prices.get(leg["symbol"], float(order["limit_price"] or 0))
        held = fake.positions.get(leg["symbol"], [0.0])[0]
        sign = 1 if leg["side"] == "buy" else -1
        if sign * held >= 0:  # closing trades need no buying power
            mult = OPTION_MULTIPLIER if leg["asset_class"] == "us_option" else 1
            total += sign * float(leg.get("ratio_qty") or 1) * float(order["qty"]) * px * mult
    return total


def _submit(fake: FakeAlpacaBroker, body: bytes) -> Response:
    try:
        data = json.loads(body)
    except ValueError:
        return _err(400, 40010000, "request body format is invalid")
    cid = data.get("client_order_id") or str(uuid.uuid4())
    if len(cid) > 48:
        return _err(422, 40010001, "client_order_id must be no more than 48 characters")
    if cid in fake.by_cid:
        return _err(422, 40010001, "client_order_id must be unique")
    problem = _validate(fake, data)
    if problem:
        return _err(422, 40010001, problem)
    order = _wire(fake, data, cid)
    if data.get("order_class") == "mleg":
        order["legs"] = [
            _wire(
                fake,
                {
                    **leg,
                    "qty": float(data["qty"]) * float(leg["ratio_qty"]),
                    "type": data["type"],
                    "time_in_force": data["time_in_force"],
                },
                f"{cid}-leg{k}",
                leg=True,
            )
            for k, leg in enumerate(data["legs"])
        ]
    debit = _debit(fake, order)
    if debit > fake.cash + 1e-6:
        return _err(
            403,
            40310000,
            "insufficient buying power",
            buying_power=_s(fake.cash),
            cost_basis=_s(debit),
        )
    return Response(_store(fake, order))


def _store(fake: FakeAlpacaBroker, order: dict[str, Any]) -> dict[str, Any]:
    fake.orders[order["id"]] = order
    fake.submitted[order["id"]] = datetime.fromisoformat(order["submitted_at"][:26] + "+00:00")
    fake.by_cid[order["client_order_id"]] = order["id"]
    fake.emit("new", order)
    if fake.auto_fill and _marketable(fake, order):
        half = float(order["qty"]) // 2 if fake.partial_first else None
        fake._fill(order, half or None)
    return order


def _marketable(fake: FakeAlpacaBroker, order: dict[str, Any]) -> bool:
    legs = order["legs"] or [order]
    prices = [fake.prices.get(leg["symbol"]) for leg in legs]
    if any(p is None for p in prices) or order["limit_price"] is None:
        return all(p is not None for p in prices)
    limit = float(order["limit_price"])
    if len(legs) == 1:
        return prices[0] <= limit if order["side"] == "buy" else prices[0] >= limit
    net = sum(
        (1 if leg["side"] == "buy" else -1) * float(leg["ratio_qty"]) * p
        for leg, p in zip(legs, prices, strict=True)
    )
    return net <= limit + 1e-9


def _list(fake: FakeAlpacaBroker, req: Request) -> Response:
    limit = int(req.param("limit") or 50)
    if not 1 <= limit <= 500:
        return _err(422, 40010001, "limit must be between 1 and 500")
    status = req.param("status") or "open"
    after, until = (
        datetime.fromisoformat(v) if v else None for v in (req.param("after"), req.param("until"))
    )
    rows = [
        (fake.submitted[i], o)
        for i, o in fake.orders.items()
        if status == "all" or (o["status"] in TERMINAL) == (status == "closed")
    ]
    rows = [r for r in rows if (after is None or r[0] > after) and (until is None or r[0] <= until)]
    rows.sort(key=lambda r: r[0], reverse=(req.param("direction") or "desc") == "desc")
    return Response([o for _, o in rows[:limit]])


def _cancel(fake: FakeAlpacaBroker, order: dict[str, Any]) -> Response:
    if order["status"] in TERMINAL:
        return _err(422, 42210000, f"order is {order['status']} and cannot be canceled")
    now = _ts(fake.now())
    order.update(status="canceled", canceled_at=now, updated_at=now)
    fake.emit("canceled", order)
    return Response(b"", 204)


def _cancel_all(fake: FakeAlpacaBroker) -> Response:
    out = []
    for order in fake.orders.values():
        if order["status"] not in TERMINAL:
            _cancel(fake, order)
            out.append({"id": order["id"], "status": 200, "body": order})
    return Response(out, 207)


def _replace(fake: FakeAlpacaBroker, old: dict[str, Any], body: bytes) -> Response:
    data = json.loads(body or b"{}")
    if old["status"] in TERMINAL or old["order_class"] == "mleg":
        return _err(422, 42210000, "order is not replaceable")
    cid = data.get("client_order_id") or str(uuid.uuid4())
    if cid in fake.by_cid:
        return _err(422, 40010001, "client_order_id must be unique")
    left = float(old["qty"]) - float(old["filled_qty"])
    new = _wire(fake, {"symbol": old["symbol"], "side": old["side"], "type": old["type"],
                       "time_in_force": data.get("time_in_force") or old["time_in_force"],
                       "qty": float(data.get("qty") or left), "position_intent":
                       old["position_intent"], "limit_price": data.get("limit_price")
                       or old["limit_price"]}, cid)  # fmt: skip
    new["replaces"] = old["id"]
    now = _ts(fake.now())
    old.update(status="replaced", replaced_at=now, replaced_by=new["id"], updated_at=now)
    fake.emit("replaced", old)
    return Response(_store(fake, new))


def _position(fake: FakeAlpacaBroker, symbol: str, qty: float, avg: float, ac: str) -> dict:
    px = fake.prices.get(symbol, avg)
    mult = OPTION_MULTIPLIER if ac == "us_option" else 1
    return {
        "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, symbol)),
        "symbol": symbol,
        "exchange": "",
        "asset_class": ac,
        "avg_entry_price": _s(avg),
        "qty": _s(qty),
        "side": "long" if qty > 0 else "short",
        "market_value": _s(qty * px * mult),
        "cost_basis": _s(qty * avg * mult),
        "unrealized_pl": _s(qty * (px - avg) * mult),
        "current_price": _s(px),
        "qty_available": _s(qty),
    }


def _account(fake: FakeAlpacaBroker) -> dict[str, Any]:
    equity = fake.cash + sum(
        q * fake.prices.get(s, a) * (OPTION_MULTIPLIER if c == "us_option" else 1)
        for s, (q, a, c) in fake.positions.items()
    )
    return {
        "id": "904837e3-3b76-47ec-b432-046db621571b",
        "account_number": "PA3FAKE00001",
        "status": "ACTIVE",
        "currency": "USD",
        "cash": _s(fake.cash),
        "equity": _s(equity),
        "last_equity": _s(fake.last_equity),
        "portfolio_value": _s(equity),
        "buying_power": _s(fake.cash),
        "options_buying_power": _s(fake.cash),
        "trading_blocked": False,
        "account_blocked": False,
        "pattern_day_trader": False,
    }


def _clock(fake: FakeAlpacaBroker) -> dict[str, Any]:
    ts = fake.market_ts or datetime.now(UTC)
    day = ts.date()
    return {
        "timestamp": ts.isoformat(),
        "is_open": fake.is_open,
        "next_open": f"{day + timedelta(days=1)}T09:30:00-05:00",
        "next_close": f"{day}T16:00:00-05:00",
    }


def _activities(fake: FakeAlpacaBroker, req: Request) -> Response:
    kinds = set((req.param("activity_types") or "").split(",")) - {""}
    rows = [a for a in fake.activities if not kinds or a["activity_type"] in kinds]
    if after := req.param("after"):
        rows = [a for a in rows if a["date"] >= after[:10]]
    if token := req.param("page_token"):
        ids = [a["id"] for a in rows]
        rows = rows[ids.index(token) + 1 :] if token in ids else []
    return Response(rows[: int(req.param("page_size") or 100)])


def _progress(order: dict[str, Any], filled: float, px: float, now: datetime) -> None:
    old_q = float(order["filled_qty"])
    old_p = float(order["filled_avg_price"] or 0)
    avg = (old_p * old_q + px * (filled - old_q)) / filled
    full = filled >= float(order["qty"]) - 1e-9
    order.update(
        filled_qty=_s(filled),
        filled_avg_price=_s(round(avg, 6)),
        status="filled" if full else "partially_filled",
        updated_at=_ts(now),
        filled_at=_ts(now) if full else None,
    )


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAlpacaBroker
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the access log."""

    def setup(self) -> None:
        """No Nagle: headers and body go out as separate writes (else ~40 ms per request)."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        req = Request(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()))
        out = self.fake.dispatch(req, body)
        if out == "reset":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if out == "timeout":
            time.sleep(self.fake.timeout_s)
            out = Response({"message": "late"}, 200)
        assert isinstance(out, Response)
        data = out.body if isinstance(out.body, bytes) else json.dumps(out.body).encode()
        self.send_response_only(out.status)  # not send_response: it adds a second, real Date
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Date": formatdate(time.time() + self.fake.date_skew_s, usegmt=True),
            **self.fake.rate_headers(),
            **out.headers,
        }
        if out.status == 429:
            headers["X-Ratelimit-Remaining"] = "0"
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_DELETE = _serve
