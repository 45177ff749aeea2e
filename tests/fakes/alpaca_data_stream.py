"""A local fake of Alpaca's market-data streams (``wss://stream.data.alpaca.markets``).

A websockets server on 127.0.0.1 (ephemeral port, its own event-loop thread: ``LoopServer``)
speaking the documented protocol (STREAMS_BOTS_NOTES §1):
greeting ``[{"T":"success","msg":"connected"}]``; auth by an ``{"action":"auth"}`` frame or the
``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY`` upgrade headers; additive ``subscribe`` and
subtractive ``unsubscribe`` whose ack lists the whole current set; error frames 400..409 and
500; every server message an array. Stocks live at ``/v2/{iex,sip,delayed_sip,test}`` (and
``/v1beta1/{boats,overnight}``), options at ``/v1beta1/{indicative,opra}``.

Encoding is per connection, as the vendor does it: msgpack (timestamps as msgpack Timestamp ext
-1, what alpaca-py's ``_cast`` needs) when the upgrade carried ``Content-Type:
application/msgpack`` (alpaca-py always sends it) and on every options feed; otherwise JSON text
with RFC 3339 timestamps. Client frames may be msgpack (possibly fragmented) or JSON.

Choices where the vendor's behaviour is not documented [inference]: 402/404/406/409 close the
socket after the error frame; a subscribe naming a symbol outside ``known_symbols`` leaves that
symbol out of the set (the ack shows it missing); ``symbol_limit`` counts distinct symbols over
all channels, ``*`` excluded; ``mute`` withholds market data only (acks and pings still flow).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from alpaca_improved_pipelines import calendar as cal
from tests.fakes.alpaca_market import num, rfc3339
from tests.fakes.market import Bar, FakeMarket, OptionQuote
from tests.fakes.ws_server import Conn, LoopServer

STOCK_PATHS = {"iex": "v2", "sip": "v2", "delayed_sip": "v2", "test": "v2"}
STOCK_PATHS |= {"boats": "v1beta1", "overnight": "v1beta1"}
OPTION_PATHS = {"indicative": "v1beta1", "opra": "v1beta1"}
STOCK_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
OPTION_CHANNELS = ("trades", "quotes")
# Wire ``T`` -> the channel whose subscribers get it (corrections/cancel errors ride on trades).
TYPE_CHANNEL = {"t": "trades", "q": "quotes", "b": "bars", "u": "updatedBars", "d": "dailyBars"}
TYPE_CHANNEL |= {"s": "statuses", "l": "lulds", "c": "trades", "x": "trades"}
ERRORS = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    408: "v2 not enabled",
    409: "insufficient subscription",
    500: "internal error",
}
REDACTED = "REDACTED"
NEW_YORK = ZoneInfo("America/New_York")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def wire_bar(symbol: str, bar: Bar, kind: str = "b") -> dict[str, Any]:
    """A FakeMarket bar as a stream message (``kind`` b, u or d) with a datetime ``t``."""
    secs, rest = divmod(bar.ts_ns, 1_000_000_000)
    t = dt.datetime.fromtimestamp(secs, tz=dt.UTC) + dt.timedelta(microseconds=rest // 1000)
    return {"T": kind, "S": symbol, "o": bar.o, "h": bar.h, "l": bar.l, "c": bar.c} | {
        "v": num(bar.v),
        "t": t,
        "n": bar.n,
        "vw": bar.vw,
    }


def minute_ns(session: dt.date, minute: int) -> int:
    """Epoch ns of minute ``minute`` of ``session`` counted from the regular open (may be < 0)."""
    return int(cal.session_open_close(session)[0].value) + minute * 60_000_000_000


def epoch_ns(value: dt.datetime) -> int:
    """Exact epoch nanoseconds of a tz-aware datetime (no float rounding)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} in a stream message: make it tz-aware")
    return (value - EPOCH) // dt.timedelta(microseconds=1) * 1000


def option_quote(
    market: FakeMarket, q: OptionQuote, session: dt.date, minute: int, k: int, per_minute: int = 1
) -> dict[str, Any] | None:
    """Quote ``k`` of ``per_minute`` in ``minute`` for contract ``q`` (None: no underlying bar)."""
    ns = minute_ns(session, minute)
    bar = next((b for b in market.minute_bars(q.underlying, session) if b.ts_ns == ns), None)
    if bar is None:
        return None
    delta = (q.greeks or {}).get("delta", 0.5 if q.right == "C" else -0.5)
    half = max((q.ask - q.bid) / 2, 0.005)
    mid = max((q.bid + q.ask) / 2 + delta * (bar.c - q.spot), half + 0.01)
    t_ns = ns + (k * 60_000_000_000) // per_minute + 500_000_000
    return {"T": "q", "S": q.occ, "t": msgpack.Timestamp.from_unix_nano(t_ns)} | {
        "bx": "C",
        "bp": round(mid - half, 2),
        "bs": 10 + k,
        "ax": "C",
        "ap": round(mid + half, 2),
        "as": 12 + k,
        "c": "A",
    }


def _to_wire(value: Any, packed: bool) -> Any:
    """Datetimes (or msgpack Timestamps, for nanoseconds) as Timestamp ext -1 or RFC 3339."""
    if isinstance(value, dt.datetime | msgpack.Timestamp):
        ns = value.to_unix_nano() if isinstance(value, msgpack.Timestamp) else epoch_ns(value)
        return msgpack.Timestamp.from_unix_nano(ns) if packed else rfc3339(ns)
    if isinstance(value, dict):
        return {k: _to_wire(v, packed) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_wire(v, packed) for v in value]
    return value


@dataclass(eq=False)
class _Conn(Conn):
    packed: bool = False
    subs: dict[str, list[str]] = field(default_factory=dict)

    def wants(self, msg: dict[str, Any]) -> bool:
        chosen = self.subs.get(TYPE_CHANNEL.get(msg.get("T", ""), ""), [])
        return "*" in chosen or msg.get("S") in chosen


class FakeAlpacaDataStream(LoopServer):
    """The fake server: clients use ``fake.url("iex")`` inside ``with FakeAlpacaDataStream()``.

    Args:
        key, secret: The only key pair that authenticates.
        market: Source of ``play``/``updated_bar`` bars (default ``FakeMarket()``).
        plan_feeds: Feeds the key's plan allows; others get 409 at auth. None = every feed.
        symbol_limit: Distinct symbols one connection may hold; beyond it a subscribe gets 405.
        known_symbols: Symbols that exist; None = every symbol.
        auth_timeout: Seconds a connection may stay unauthenticated before 404 + close.
    """

    kind = "feed"

    def __init__(
        self,
        key: str = "key",
        secret: str = "secret",
        *,
        market: FakeMarket | None = None,
        plan_feeds: set[str] | None = None,
        symbol_limit: int | None = None,
        known_symbols: set[str] | None = None,
        auth_timeout: float = 10.0,
    ) -> None:
        self.keys = (key, secret)
        self.market = market or FakeMarket()
        self.plan_feeds = plan_feeds
        self.symbol_limit = symbol_limit
        self.known_symbols = known_symbols
        self.auth_timeout = auth_timeout
        super().__init__(STOCK_PATHS | OPTION_PATHS)

    def url(self, feed: str) -> str:
        """``ws://127.0.0.1:PORT/v2/iex`` and the like (``/v1beta1/...`` for options)."""
        return f"ws://127.0.0.1:{self.port}/{self._version(feed)}/{feed}"

    def _version(self, feed: str) -> str:
        self._endpoint(feed)
        return (STOCK_PATHS | OPTION_PATHS)[feed]

    # -- inspection (test thread) -------------------------------------------------------------
    def subscriptions(self, feed: str) -> dict[str, list[str]]:
        """The channel -> symbols set of the (newest) authenticated connection; {} if none."""
        with self._lock:
            authed = [c for c in self._endpoint(feed).conns if isinstance(c, _Conn) and c.authed]
            return {k: list(v) for k, v in authed[-1].subs.items()} if authed else {}

    # -- protocol (loop thread) ----------------------------------------------------------------
    def _upgrade(self, ws: ServerConnection, request: Request) -> Response | None:
        parts = request.path.split("?")[0].strip("/").split("/")
        feed = parts[-1]
        if len(parts) != 2 or (STOCK_PATHS | OPTION_PATHS).get(feed) != parts[0]:
            return ws.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        return self._attempt(ws, feed)

    def _accept(self, ws: ServerConnection, request: Request) -> Conn:
        feed = request.path.split("?")[0].strip("/").split("/")[-1]
        mime = request.headers.get("Content-Type", "")
        return _Conn(ws, feed, packed=feed in OPTION_PATHS or "msgpack" in mime)

    async def _converse(self, conn: Conn) -> None:
        assert isinstance(conn, _Conn)
        headers = conn.ws.request.headers if conn.ws.request else Headers()
        await self._send(conn, [{"T": "success", "msg": "connected"}])
        if "APCA-API-KEY-ID" in headers:
            pair = (headers["APCA-API-KEY-ID"], headers.get("APCA-API-SECRET-KEY", ""))
            if not await self._authenticate(conn, *pair):
                return
        await self._serve(conn)

    async def _serve(self, conn: _Conn) -> None:
        deadline = self._loop.time() + self.auth_timeout
        while True:
            if conn.authed:
                raw = await conn.ws.recv()
            else:
                try:
                    raw = await asyncio.wait_for(conn.ws.recv(), deadline - self._loop.time())
                except TimeoutError:
                    await self._fail(conn, 404, close=True)
                    return
            msg = self._decode(raw)
            if msg is None:
                await self._fail(conn, 400)
                continue
            self._log(conn, {**msg, "secret": REDACTED} if "secret" in msg else msg)
            action = msg.get("action")
            if action == "auth" and conn.authed:
                await self._fail(conn, 403)
            elif action == "auth":
                if not await self._authenticate(conn, msg.get("key"), msg.get("secret")):
                    return
            elif action in ("subscribe", "unsubscribe") and not conn.authed:
                await self._fail(conn, 401)
            elif action in ("subscribe", "unsubscribe"):
                await self._subscribe(conn, msg, action == "subscribe")
            else:
                await self._fail(conn, 400)

    @staticmethod
    def _decode(raw: str | bytes) -> dict[str, Any] | None:
        try:
            msg = json.loads(raw) if isinstance(raw, str) else msgpack.unpackb(raw)
        except Exception:  # noqa: BLE001 - any undecodable frame is "invalid syntax"
            return None
        return msg if isinstance(msg, dict) else None

    async def _authenticate(self, conn: _Conn, key: Any, secret: Any) -> bool:
        """Authenticate ``conn``; on failure send the error, close, and return False."""
        if (key, secret) != self.keys:
            code = 402
        elif self.plan_feeds is not None and conn.endpoint not in self.plan_feeds:
            code = 409
        elif self._others(conn):
            code = 406
        else:
            conn.authed = True
            await self._send(conn, [{"T": "success", "msg": "authenticated"}])
            return True
        await self._fail(conn, code, close=True)
        return False

    async def _subscribe(self, conn: _Conn, msg: dict[str, Any], add: bool) -> None:
        allowed = OPTION_CHANNELS if conn.endpoint in OPTION_PATHS else STOCK_CHANNELS
        asked = {k: v for k, v in msg.items() if k != "action"}
        if any(k not in allowed or not isinstance(v, list) for k, v in asked.items()):
            await self._fail(conn, 400)
            return
        new = {ch: list(conn.subs.get(ch, [])) for ch in allowed}
        for ch, symbols in asked.items():
            for s in symbols:
                known = self.known_symbols is None or s == "*" or s in self.known_symbols
                if add and known and s not in new[ch]:
                    new[ch].append(s)
                elif not add and s in new[ch]:
                    new[ch].remove(s)
        distinct = {s for v in new.values() for s in v if s != "*"}
        if add and self.symbol_limit is not None and len(distinct) > self.symbol_limit:
            await self._fail(conn, 405)
            return
        with self._lock:
            conn.subs = new
        ack: dict[str, Any] = {"T": "subscription", **new}
        if conn.endpoint in STOCK_PATHS:
            ack |= {"corrections": list(new["trades"]), "cancelErrors": list(new["trades"])}
        await self._send(conn, [ack])

    async def _fail(self, conn: _Conn, code: int, *, close: bool = False) -> None:
        await self._send(conn, [{"T": "error", "code": code, "msg": ERRORS[code]}])
        if close:
            await conn.ws.close(1008, ERRORS[code])

    async def _send(self, conn: Conn, msgs: list[dict[str, Any]]) -> None:
        assert isinstance(conn, _Conn)
        wire = _to_wire(msgs, conn.packed)
        await conn.ws.send(msgpack.packb(wire) if conn.packed else json.dumps(wire))

    # -- publishing (test thread) --------------------------------------------------------------
    def publish(
        self,
        feed: str,
        messages: list[dict[str, Any]],
        *,
        duplicate: bool = False,
        reverse: bool = False,
        batch: bool = True,
    ) -> int:
        """Send ``messages`` to every subscriber of each message's channel and symbol.

        One frame per connection holding its share (``batch=False``: one frame per message);
        ``duplicate`` sends each frame twice, ``reverse`` reverses the order. Muted feeds get
        nothing. Returns the number of frames sent. Each message needs ``T`` and ``S``;
        datetimes (``t``) must be tz-aware.
        """
        types = TYPE_CHANNEL if feed in STOCK_PATHS else {"t": "trades", "q": "quotes"}
        for m in messages:
            if m.get("T") not in types or "S" not in m:
                raise ValueError(
                    f"publish({feed!r}): message {m!r} needs T in {sorted(types)} and S"
                )
            _to_wire(m, packed=True)  # naive datetimes fail here, in the caller's thread
        return self._fan_out(feed, messages, duplicate=duplicate, reverse=reverse, batch=batch)

    def play(
        self,
        feed: str,
        session: dt.date,
        first_minute: int,
        last_minute: int,
        *,
        symbols: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Publish FakeMarket's minute bars for minutes [first, last) after the open, a frame each.

        ``symbols`` defaults to the bar subscriptions of the feed's connections. Returns the
        messages in the order sent.
        """
        if feed not in STOCK_PATHS:
            raise ValueError(f"play({feed!r}): bars exist on stock feeds only")
        names = sorted(symbols) if symbols is not None else self._bar_symbols(feed)
        books = {s: {b.ts_ns: b for b in self.market.minute_bars(s, session)} for s in names}
        out: list[dict[str, Any]] = []
        for minute in range(first_minute, last_minute):
            ns = minute_ns(session, minute)
            msgs = [wire_bar(s, books[s][ns]) for s in names if ns in books[s]]
            if msgs:
                self.publish(feed, msgs)
                out.extend(msgs)
        return out

    def _subscribed(self, feed: str, channel: str, what: str) -> list[str]:
        with self._lock:
            conns = [c for c in self._endpoints[feed].conns if isinstance(c, _Conn)]
            named = sorted({s for c in conns for s in c.subs.get(channel, [])} - {"*"})
        if not named:
            raise ValueError(f"{what}({feed!r}): nobody subscribed {channel} by symbol; pass them")
        return named

    def _bar_symbols(self, feed: str) -> list[str]:
        named = self._subscribed(feed, "bars", "play")
        for s in named:
            if not self.market.known(s):
                raise ValueError(f"play({feed!r}): FakeMarket has no symbol {s!r}")
        return named

    def play_quotes(
        self,
        feed: str,
        session: dt.date,
        first_minute: int,
        last_minute: int,
        *,
        contracts: Iterable[str] | None = None,
        per_minute: int = 1,
    ) -> list[dict[str, Any]]:
        """Publish option NBBO quotes (``T="q"``) for minutes [first, last), a frame a minute.

        Each contract's quote is FakeMarket's closing quote moved by delta times the
        underlying's move from its close to the minute's close, spread kept; ``per_minute``
        quotes a minute, evenly spaced. ``contracts`` defaults to the quote subscriptions.
        """
        if feed not in OPTION_PATHS:
            raise ValueError(f"play_quotes({feed!r}): use an options feed ({sorted(OPTION_PATHS)})")
        occs = (
            sorted(contracts)
            if contracts is not None
            else self._subscribed(feed, "quotes", "play_quotes")
        )
        chain = {occ: self.market.quote(occ, session) for occ in occs}
        missing = [occ for occ, q in chain.items() if q is None]
        if missing:
            raise ValueError(f"play_quotes: FakeMarket has no contracts {missing} on {session}")
        out: list[dict[str, Any]] = []
        quotes = [q for q in chain.values() if q is not None]
        for minute in range(first_minute, last_minute):
            msgs = []
            for k in range(per_minute):
                for q in quotes:
                    m = option_quote(self.market, q, session, minute, k, per_minute)
                    msgs += [m] if m is not None else []
            if msgs:
                self.publish(feed, msgs)
                out.extend(msgs)
        return out

    def updated_bar(
        self, feed: str, symbol: str, ts: dt.datetime, **changes: float
    ) -> dict[str, Any]:
        """Publish ``T="u"`` for the existing minute ``ts`` of ``symbol`` with ``changes`` applied.

        High and low widen to contain a changed open/close unless given. Returns the message.
        """
        bad = set(changes) - {"o", "h", "l", "c", "v", "n", "vw"}
        if bad:
            raise ValueError(f"updated_bar: unknown fields {sorted(bad)}; use o h l c v n vw")
        ns = epoch_ns(ts)
        day = ts.astimezone(NEW_YORK).date()
        bar = next((b for b in self.market.minute_bars(symbol, day) if b.ts_ns == ns), None)
        if bar is None:
            raise ValueError(f"updated_bar: {symbol} has no minute bar at {ts.isoformat()}")
        msg = wire_bar(symbol, bar, "u") | changes
        msg["h"] = changes.get("h", max(msg["h"], msg["o"], msg["c"]))
        msg["l"] = changes.get("l", min(msg["l"], msg["o"], msg["c"]))
        self.publish(feed, [msg])
        return msg

    # -- fault knobs ---------------------------------------------------------------------------
    def send_error(self, feed: str, code: int, *, close: bool = False) -> None:
        """Send error ``code`` (e.g. 407 slow client, 500) to every authenticated connection."""
        if code not in ERRORS:
            raise ValueError(f"send_error: unknown code {code}; use one of {sorted(ERRORS)}")

        async def send() -> None:
            for conn in [c for c in self._endpoints[feed].conns if c.authed]:
                assert isinstance(conn, _Conn)
                await self._fail(conn, code, close=close)

        self._endpoint(feed)
        self._call(send())
