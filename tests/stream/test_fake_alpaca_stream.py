"""The Alpaca market-data stream fake against the real alpaca-py 0.44 clients and a JSON client.

What is proved: the real ``StockDataStream``/``OptionDataStream`` connect, subscribe and parse every
message kind the fake sends (msgpack, Timestamp ext -1 -> tz-aware datetimes); a client without
the msgpack header gets JSON text; the error codes behave as documented (409 ends alpaca-py's
``_run_forever``, 406 refuses the newcomer only and a refused alpaca-py retries no faster than
its backoff, 405 leaves the set unchanged); ``mute`` trips ``data_timeout`` and ``drop`` makes
alpaca-py reconnect and re-subscribe, with nothing backfilled; the duplicate, reverse and batch
knobs and nanosecond timestamps reach the wire as asked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import msgpack
import pytest
from alpaca.data.live.option import OptionDataStream
from alpaca.data.live.stock import StockDataStream
from alpaca.data.live.websocket import DataStream
from websockets.sync.client import ClientConnection, connect

from tests.fakes.alpaca_data_stream import FakeAlpacaDataStream, minute_ns
from tests.fakes.market import FakeMarket
from tests.fakes.ws_server import wait_for

SESSION = dt.date(2024, 3, 15)
OPEN = dt.datetime(2024, 3, 15, 13, 30, tzinfo=dt.UTC)
OCC = "AAPL240322C00170000"


S = TypeVar("S", bound=DataStream)


class Client(Generic[S]):
    """A real alpaca-py stream run on its own thread (``run()``), stopped by ``stop_ws`` + close."""

    def __init__(self, stream: S) -> None:
        self.stream = stream
        self.got: list[Any] = []
        self.thread = threading.Thread(target=stream.run, daemon=True)

    async def handler(self, item: Any) -> None:
        self.got.append(item)

    def start(self) -> Client[S]:
        self.thread.start()
        return self

    def stop(self) -> None:
        async def halt() -> None:
            await self.stream.stop_ws()
            await self.stream.close()

        loop = self.stream._loop
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(halt(), loop).result(5)
        self.thread.join(5)
        assert not self.thread.is_alive(), "alpaca-py stream did not stop"


@pytest.fixture
def fake() -> Iterator[FakeAlpacaDataStream]:
    with FakeAlpacaDataStream("key", "secret") as f:
        yield f


def stock(fake: FakeAlpacaDataStream, feed: str = "iex", **kw: Any) -> StockDataStream:
    return StockDataStream("key", "secret", url_override=fake.url(feed), **kw)


def test_stock_stream_receives_every_kind_with_datetimes(fake: FakeAlpacaDataStream) -> None:
    c = Client(stock(fake))
    s = c.stream
    s.subscribe_bars(c.handler, "AAPL")
    s.subscribe_updated_bars(c.handler, "AAPL")
    s.subscribe_trades(c.handler, "AAPL")
    s.subscribe_quotes(c.handler, "AAPL")
    s.subscribe_trading_statuses(c.handler, "AAPL")
    s.subscribe_daily_bars(c.handler, "AAPL")
    c.start()
    try:
        wait_for(lambda: fake.subscriptions("iex").get("dailyBars") == ["AAPL"])
        sent = fake.play("iex", SESSION, 0, 3)
        wait_for(lambda: len(c.got) == 3)
        market = {b.ts_ns: b for b in FakeMarket().minute_bars("AAPL", SESSION)}
        for i, bar in enumerate(c.got):
            ref = market[minute_ns(SESSION, i)]
            assert bar.timestamp == OPEN + dt.timedelta(minutes=i)
            assert bar.timestamp.tzinfo is not None
            assert (bar.open, bar.high, bar.low, bar.close) == (ref.o, ref.h, ref.l, ref.c)
            assert bar.volume == pytest.approx(ref.v, abs=0.5) and bar.trade_count == ref.n
        assert [m["t"] for m in sent] == [b.timestamp for b in c.got]
        upd = fake.updated_bar("iex", "AAPL", OPEN, c=sent[0]["c"] + 0.5, v=sent[0]["v"] + 10)
        wait_for(lambda: len(c.got) == 4)
        assert c.got[3].timestamp == OPEN and c.got[3].close == pytest.approx(upd["c"], abs=1e-9)
        assert c.got[3].high >= c.got[3].close
        t = OPEN + dt.timedelta(seconds=5, microseconds=123456)
        extras = [
            {"T": "t", "S": "AAPL", "i": 7, "x": "V", "p": 171.25, "s": 100, "t": t, "c": ["@"]}
            | {"z": "C"},
            {"T": "q", "S": "AAPL", "ax": "V", "ap": 171.3, "as": 2, "bx": "V", "bp": 171.2}
            | {"bs": 3, "t": t, "c": ["R"], "z": "C"},
            {"T": "s", "S": "AAPL", "sc": "H", "sm": "Trading Halt", "rc": "T12"}
            | {"rm": "Additional Information Requested", "t": t, "z": "C"},
            {"T": "d", "S": "AAPL", "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 10, "n": 2}
            | {"vw": 1.2, "t": OPEN},
            {"T": "t", "S": "MSFT", "i": 8, "x": "V", "p": 400.0, "s": 1, "t": t, "c": []},
        ]
        assert fake.publish("iex", extras) == 1  # one frame; MSFT is filtered out
        wait_for(lambda: len(c.got) == 8)
        trade, quote, status, daily = c.got[4:]
        assert trade.price == 171.25 and trade.timestamp == t and trade.id == 7
        assert (quote.bid_price, quote.ask_price, quote.timestamp) == (171.2, 171.3, t)
        assert (status.status_code, status.reason_code, status.timestamp) == ("H", "T12", t)
        assert daily.close == 1.5 and daily.timestamp == OPEN
        frames = fake.received("iex")
        assert frames[0] == {"action": "auth", "key": "key", "secret": "REDACTED"}
        assert frames[1]["action"] == "subscribe" and frames[1]["bars"] == ["AAPL"]
    finally:
        c.stop()


def test_option_stream_trades_and_quotes(fake: FakeAlpacaDataStream) -> None:
    c = Client(OptionDataStream("key", "secret", url_override=fake.url("indicative")))
    c.stream.subscribe_trades(c.handler, OCC)
    c.stream.subscribe_quotes(c.handler, OCC)
    c.start()
    try:
        wait_for(lambda: fake.subscriptions("indicative").get("quotes") == [OCC])
        t = OPEN + dt.timedelta(minutes=1, microseconds=5)
        msgs = [
            {"T": "t", "S": OCC, "t": t, "p": 3.1, "s": 2, "x": "C", "c": "I"},
            {"T": "q", "S": OCC, "t": t, "bx": "C", "bp": 3.0, "bs": 5, "ax": "C", "ap": 3.2}
            | {"as": 7, "c": "A"},
        ]
        fake.publish("indicative", msgs)
        wait_for(lambda: len(c.got) == 2)
        assert c.got[0].price == 3.1 and c.got[0].timestamp == t
        assert (c.got[1].bid_price, c.got[1].ask_size, c.got[1].timestamp) == (3.0, 7, t)
        with pytest.raises(ValueError, match="T in"):
            fake.publish("indicative", [{"T": "b", "S": OCC, "t": t}])
    finally:
        c.stop()


def send(ws: ClientConnection, msg: dict[str, Any]) -> list[dict[str, Any]]:
    ws.send(json.dumps(msg))
    return recv(ws)


def recv(ws: ClientConnection) -> list[dict[str, Any]]:
    raw = ws.recv(timeout=5)
    assert isinstance(raw, str), "JSON clients get text frames"
    out: list[dict[str, Any]] = json.loads(raw)
    return out


def test_json_client_protocol_and_errors() -> None:
    with (
        FakeAlpacaDataStream("key", "secret", symbol_limit=2) as fake,
        connect(fake.url("sip")) as ws,
    ):
        assert recv(ws) == [{"T": "success", "msg": "connected"}]
        err = send(ws, {"action": "subscribe", "bars": ["AAPL"]})
        assert err == [{"T": "error", "code": 401, "msg": "not authenticated"}]
        ws.send("{not json")
        assert recv(ws)[0]["code"] == 400
        ok = send(ws, {"action": "auth", "key": "key", "secret": "secret"})
        assert ok == [{"T": "success", "msg": "authenticated"}]
        assert send(ws, {"action": "auth", "key": "key", "secret": "secret"})[0]["code"] == 403
        ack = send(ws, {"action": "subscribe", "bars": ["AAPL"], "trades": ["MSFT"]})[0]
        assert ack["T"] == "subscription" and ack["bars"] == ["AAPL"]
        assert ack["trades"] == ack["corrections"] == ack["cancelErrors"] == ["MSFT"]
        ack = send(ws, {"action": "subscribe", "quotes": ["AAPL"], "bars": ["*"]})[0]
        assert (ack["bars"], ack["quotes"], ack["trades"]) == (["AAPL", "*"], ["AAPL"], ["MSFT"])
        over = send(ws, {"action": "subscribe", "bars": ["SPY"]})
        assert over == [{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]
        assert fake.subscriptions("sip")["bars"] == ["AAPL", "*"]  # unchanged
        ack = send(ws, {"action": "unsubscribe", "bars": ["AAPL"], "trades": ["MSFT"]})[0]
        assert (ack["bars"], ack["trades"], ack["quotes"]) == (["*"], [], ["AAPL"])
        trade = {"T": "t", "S": "MSFT", "p": 1.0, "s": 1, "t": OPEN}
        assert fake.publish("sip", [trade]) == 0  # MSFT trades were unsubscribed
        fake.play("sip", SESSION, 5, 6, symbols=["SPY"])  # bars: ["*"] takes any symbol
        bar = recv(ws)[0]
        assert (bar["T"], bar["S"], bar["t"]) == ("b", "SPY", "2024-03-15T13:35:00Z")


def test_auth_paths_headers_timeout_and_bad_key() -> None:
    with FakeAlpacaDataStream("key", "secret", auth_timeout=0.3) as fake:
        headers = {"APCA-API-KEY-ID": "key", "APCA-API-SECRET-KEY": "secret"}
        with connect(fake.url("iex"), additional_headers=headers) as ws:
            assert recv(ws)[0]["msg"] == "connected"
            assert recv(ws) == [{"T": "success", "msg": "authenticated"}]
            assert fake.connections("iex") == 1
        with connect(fake.url("iex")) as ws:
            recv(ws)
            started = time.monotonic()
            assert recv(ws) == [{"T": "error", "code": 404, "msg": "auth timeout"}]
            assert 0.25 <= time.monotonic() - started < 2
            with pytest.raises(Exception, match="1008"):
                ws.recv(timeout=2)
        with connect(fake.url("iex")) as ws:
            recv(ws)
            bad = send(ws, {"action": "auth", "key": "key", "secret": "wrong"})
            assert bad == [{"T": "error", "code": 402, "msg": "auth failed"}]
        assert all(m.get("secret") in (None, "REDACTED") for m in fake.received("iex"))
        with pytest.raises(Exception, match="404"):
            connect(f"ws://127.0.0.1:{fake.port}/v2/nosuchfeed").close()


def test_409_makes_alpaca_py_stop_for_good() -> None:
    with FakeAlpacaDataStream("key", "secret", plan_feeds={"iex"}) as fake:
        c = Client(stock(fake, "sip"))
        c.stream.subscribe_bars(c.handler, "AAPL")
        c.start()
        c.thread.join(5)
        assert not c.thread.is_alive(), "_run_forever kept retrying after 409"
        assert len(fake.connection_attempts("sip")) == 1 and fake.connections("sip") == 0


def test_406_refuses_the_newcomer_and_the_first_keeps_streaming(
    fake: FakeAlpacaDataStream,
) -> None:
    c = Client(stock(fake))
    c.stream.subscribe_bars(c.handler, "AAPL")
    c.start()
    try:
        wait_for(lambda: fake.subscriptions("iex").get("bars") == ["AAPL"])
        with connect(
            fake.url("iex"), additional_headers={"Content-Type": "application/msgpack"}
        ) as ws:
            assert msgpack.unpackb(ws.recv(timeout=5))[0]["msg"] == "connected"
            ws.send(msgpack.packb({"action": "auth", "key": "key", "secret": "secret"}))
            refused = msgpack.unpackb(ws.recv(timeout=5))
            assert refused == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
        assert fake.connections("iex") == 1
        fake.play("iex", SESSION, 0, 1)
        wait_for(lambda: len(c.got) == 1)
        assert len(fake.connection_attempts("iex")) == 2  # the first never reconnected
    finally:
        c.stop()


def test_405_after_a_running_subscribe_leaves_the_set(caplog: pytest.LogCaptureFixture) -> None:
    with FakeAlpacaDataStream("key", "secret", symbol_limit=2) as fake:
        c = Client(stock(fake))
        c.stream.subscribe_bars(c.handler, "AAPL", "MSFT")
        c.start()
        try:
            wait_for(lambda: fake.subscriptions("iex").get("bars") == ["AAPL", "MSFT"])
            with caplog.at_level(logging.ERROR, logger="alpaca.data.live.websocket"):
                c.stream.subscribe_bars(c.handler, "SPY")
                wait_for(lambda: "symbol limit exceeded (405)" in caplog.text)
            assert fake.subscriptions("iex")["bars"] == ["AAPL", "MSFT"]
            fake.play("iex", SESSION, 0, 1, symbols=["AAPL", "SPY"])
            wait_for(lambda: c.got)
            time.sleep(0.1)
            assert [b.symbol for b in c.got] == ["AAPL"]
        finally:
            c.stop()


def test_mute_trips_data_timeout_and_forces_a_reconnect(fake: FakeAlpacaDataStream) -> None:
    c = Client(stock(fake, data_timeout=0.5))
    c.stream.subscribe_bars(c.handler, "AAPL")
    c.start()
    try:
        wait_for(lambda: fake.subscriptions("iex").get("bars") == ["AAPL"])
        fake.play("iex", SESSION, 0, 1)
        wait_for(lambda: len(c.got) == 1)
        fake.mute("iex")
        muted_at = time.monotonic()
        assert fake.play("iex", SESSION, 1, 2) and len(c.got) == 1  # withheld
        attempts = wait_for(lambda: (a := fake.connection_attempts("iex"))[1:] and a, 5)
        assert attempts[1] - muted_at >= 0.5  # data_timeout, then 0.5..1 s backoff
        fake.mute("iex", False)
        wait_for(lambda: fake.connections("iex") == 1 and fake.subscriptions("iex"))
        fake.play("iex", SESSION, 2, 3)
        wait_for(lambda: len(c.got) == 2)
        assert c.got[1].timestamp == OPEN + dt.timedelta(minutes=2)
    finally:
        c.stop()


def test_drop_reconnects_and_resubscribes_without_backfill(fake: FakeAlpacaDataStream) -> None:
    c = Client(stock(fake))
    c.stream.subscribe_bars(c.handler, "AAPL", "MSFT")
    c.start()
    try:
        wait_for(lambda: fake.subscriptions("iex").get("bars") == ["AAPL", "MSFT"])
        fake.play("iex", SESSION, 0, 1)
        wait_for(lambda: len(c.got) == 2)
        dropped_at = time.monotonic()
        fake.drop("iex")
        wait_for(lambda: fake.subscriptions("iex").get("bars") == ["AAPL", "MSFT"], 5)
        attempts = fake.connection_attempts("iex")
        assert len(attempts) == 2 and attempts[1] - dropped_at >= 0.45  # backoff 0.5..1 s
        subscribes = [m for m in fake.received("iex") if m["action"] == "subscribe"]
        assert len(subscribes) == 2 and subscribes[1]["bars"] == ["AAPL", "MSFT"]
        fake.play("iex", SESSION, 1, 2)
        wait_for(lambda: len(c.got) == 4)
        minutes = sorted({b.timestamp for b in c.got})
        assert minutes == [OPEN, OPEN + dt.timedelta(minutes=1)]  # nothing replayed
    finally:
        c.stop()


def test_unknown_symbols_stay_out_of_the_set_and_json_clients_on_options_get_msgpack() -> None:
    with FakeAlpacaDataStream("key", "secret", known_symbols={"AAPL", OCC}) as fake:
        with connect(fake.url("iex")) as ws:
            recv(ws)
            send(ws, {"action": "auth", "key": "key", "secret": "secret"})
            ack = send(ws, {"action": "subscribe", "trades": ["AAPL", "NOPE"], "bars": ["*"]})[0]
            assert (ack["trades"], ack["bars"]) == (["AAPL"], ["*"])
            assert send(ws, {"action": "subscribe", "news": ["AAPL"]})[0]["code"] == 400
        with connect(fake.url("opra")) as ws:  # no msgpack header: options answer msgpack anyway
            raw = ws.recv(timeout=5)
            assert isinstance(raw, bytes) and msgpack.unpackb(raw)[0]["msg"] == "connected"


def test_406_to_a_second_alpaca_py_retries_no_faster_than_its_backoff(
    fake: FakeAlpacaDataStream,
) -> None:
    first, second = Client(stock(fake)), Client(stock(fake))
    first.stream.subscribe_bars(first.handler, "AAPL")
    second.stream.subscribe_bars(second.handler, "AAPL")
    first.start()
    try:
        wait_for(lambda: fake.connections("iex") == 1)
        second.start()
        attempts = wait_for(lambda: (a := fake.connection_attempts("iex"))[3:] and a, 6)
        gaps = [b - a for a, b in zip(attempts[1:], attempts[2:], strict=False)]
        assert gaps[0] >= 0.5 and gaps[1] >= 1.0  # equal jitter: [c/2, c], c = 1 s, 2 s
        assert fake.connections("iex") == 1
        fake.play("iex", SESSION, 0, 1)
        wait_for(lambda: len(first.got) == 1)
        assert second.got == []
    finally:
        second.stop()
        first.stop()


def test_duplicates_out_of_order_and_nanosecond_timestamps(fake: FakeAlpacaDataStream) -> None:
    with connect(fake.url("iex")) as ws:
        recv(ws)
        send(ws, {"action": "auth", "key": "key", "secret": "secret"})
        send(ws, {"action": "subscribe", "trades": ["AAPL"]})
        ns = minute_ns(SESSION, 0) + 123_456_789
        msgs = [
            {"T": "t", "S": "AAPL", "p": 1.0, "s": 1, "t": msgpack.Timestamp.from_unix_nano(ns)},
            {"T": "c", "S": "AAPL", "t": OPEN, "x": "V", "oi": 1, "ci": 2, "op": 1.0, "cp": 1.1},
        ]
        assert fake.publish("iex", msgs, duplicate=True, reverse=True) == 2
        first, again = recv(ws), recv(ws)
        assert first == again and [m["T"] for m in first] == ["c", "t"]
        assert first[1]["t"] == "2024-03-15T13:30:00.123456789Z"
        assert fake.publish("iex", msgs, batch=False) == 2
        assert [recv(ws)[0]["T"], recv(ws)[0]["T"]] == ["t", "c"]
        with pytest.raises(ValueError, match="tz-aware"):
            fake.publish("iex", [{"T": "t", "S": "AAPL", "t": OPEN.replace(tzinfo=None)}])


def test_play_quotes_feeds_option_nbbo_from_the_fake_market(fake: FakeAlpacaDataStream) -> None:
    chain = FakeMarket().chain("AAPL", SESSION)
    occs = [chain[0].occ, chain[1].occ]
    c = Client(OptionDataStream("key", "secret", url_override=fake.url("opra")))
    c.stream.subscribe_quotes(c.handler, *occs)
    c.start()
    try:
        wait_for(lambda: fake.subscriptions("opra").get("quotes") == sorted(occs))
        sent = fake.play_quotes("opra", SESSION, 0, 2, per_minute=2)
        wait_for(lambda: len(c.got) == 8)
        assert [q.symbol for q in c.got] == [m["S"] for m in sent]
        assert all(0 <= q.bid_price < q.ask_price for q in c.got)
        stamps = [q.timestamp for q in c.got if q.symbol == occs[0]]
        assert stamps == [OPEN + dt.timedelta(seconds=s) for s in (0.5, 30.5, 60.5, 90.5)]
        with pytest.raises(ValueError, match="no contracts"):
            fake.play_quotes("opra", SESSION, 0, 1, contracts=["AAPL990101C00001000"])
    finally:
        c.stop()
