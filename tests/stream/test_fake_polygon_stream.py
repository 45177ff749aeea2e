"""The Polygon stream fake against the real polygon-api-client 1.16.3 ``WebSocketClient``.

What is proved: the real client connects to ``ws://127.0.0.1:PORT/stocks``, authenticates,
subscribes and parses ``AM`` aggregates (the same o/h/l/c/v/vw as the Alpaca fake's bars for the
minute) and trades; a bad key raises ``AuthError`` once, without a retry; a newer connection on
the key evicts the older one with ``max_connections`` (the client reconnects and evicts back);
``drop`` and refused upgrades make the client reconnect (with the backoff we pass it) and
re-subscribe, with nothing replayed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import threading
from collections.abc import Generator
from typing import Any

import pytest
from polygon import WebSocketClient
from polygon.exceptions import AuthError
from polygon.websocket.models import EquityAgg, EquityTrade
from websockets.sync.client import connect

from tests.fakes.alpaca_data_stream import minute_ns, wire_bar
from tests.fakes.market import FakeMarket
from tests.fakes.polygon_stream import FakePolygonStream
from tests.fakes.ws_server import wait_for

SESSION = dt.date(2024, 3, 15)
OPEN_MS = int(dt.datetime(2024, 3, 15, 13, 30, tzinfo=dt.UTC).timestamp() * 1000)


def quick_delays() -> Generator[float]:
    """websockets' backoff, shortened (its env knobs are read at import, too late for a test)."""
    return (0.05 * 2**i for i in itertools.count())


class Runner:
    """The real client's ``connect`` on its own thread and loop; ``error`` is what it raised."""

    def __init__(self, fake: FakePolygonStream, subs: list[str], key: str = "k") -> None:
        self.client = WebSocketClient(
            api_key=key, feed=fake.feed_host, market="stocks", secure=False, subscriptions=subs
        )
        self.got: list[Any] = []
        self.error: BaseException | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    async def _handle(self, msgs: list[Any]) -> None:
        self.got.extend(msgs)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(
                self.client.connect(self._handle, reconnect_delays=quick_delays)
            )
        except BaseException as err:  # noqa: BLE001 - kept for the test to assert on
            self.error = err

    def stop(self) -> None:
        if self.thread.is_alive() and self.client.websocket is not None:
            asyncio.run_coroutine_threadsafe(self.client.close(), self.loop).result(5)
        self.thread.join(5)
        assert not self.thread.is_alive(), "polygon client did not stop"


def test_real_client_gets_aggregates_equal_to_alpaca_bars_and_trades() -> None:
    with FakePolygonStream("k") as fake:
        run = Runner(fake, ["AM.AAPL", "T.*"])
        try:
            wait_for(lambda: sorted(fake.subscriptions("stocks")) == ["AM.AAPL", "T.*"])
            sent = fake.play("stocks", SESSION, 0, 2)
            wait_for(lambda: len(run.got) == 2)
            bars = {b.ts_ns: b for b in FakeMarket().minute_bars("AAPL", SESSION)}
            for i, agg in enumerate(run.got):
                assert isinstance(agg, EquityAgg) and agg.symbol == "AAPL"
                alpaca = wire_bar("AAPL", bars[minute_ns(SESSION, i)])
                assert agg.start_timestamp == OPEN_MS + i * 60_000
                assert agg.end_timestamp == agg.start_timestamp + 60_000
                assert (agg.open, agg.high, agg.low, agg.close, agg.vwap) == (
                    alpaca["o"],
                    alpaca["h"],
                    alpaca["l"],
                    alpaca["c"],
                    alpaca["vw"],
                )
                assert agg.volume == pytest.approx(alpaca["v"], abs=1)
            assert run.got[1].accumulated_volume > run.got[0].accumulated_volume
            assert sent[0]["s"] == OPEN_MS
            trade = {"ev": "T", "sym": "MSFT", "x": 4, "i": "1", "z": 3, "p": 401.5, "s": 10}
            quote = {"ev": "Q", "sym": "AAPL", "bp": 1.0, "ap": 1.1, "t": OPEN_MS}
            assert fake.publish("stocks", [trade | {"c": [0], "t": OPEN_MS + 5}, quote]) == 1
            wait_for(lambda: len(run.got) == 3)
            got = run.got[2]
            assert isinstance(got, EquityTrade) and (got.symbol, got.price) == ("MSFT", 401.5)
            assert got.timestamp == OPEN_MS + 5
            frames = fake.received("stocks")
            assert frames[0] == {"action": "auth", "params": "REDACTED"}
            assert sorted(frames[1]["params"].split(",")) == ["AM.AAPL", "T.*"]
            with pytest.raises(ValueError, match="ev in"):
                fake.publish("stocks", [{"ev": "XT", "sym": "X"}])
        finally:
            run.stop()
        assert run.error is None


def test_bad_key_raises_auth_error_once() -> None:
    with FakePolygonStream("k") as fake:
        run = Runner(fake, ["AM.AAPL"], key="wrong")
        run.thread.join(5)
        assert isinstance(run.error, AuthError)
        assert len(fake.connection_attempts("stocks")) == 1 and fake.connections("stocks") == 0


def test_newer_connection_evicts_the_older_and_the_client_evicts_back() -> None:
    with FakePolygonStream("k") as fake:
        run = Runner(fake, ["AM.AAPL"])
        try:
            wait_for(lambda: fake.subscriptions("stocks") == ["AM.AAPL"])
            with connect(f"{fake.url}/stocks") as ws:
                assert json.loads(ws.recv(timeout=5))[0]["status"] == "connected"
                ws.send(json.dumps({"action": "auth", "params": "k"}))
                assert json.loads(ws.recv(timeout=5))[0]["status"] == "auth_success"
                # the client was evicted, reconnected at once, and now evicts this socket
                evicted = json.loads(ws.recv(timeout=5))[0]
                assert evicted["status"] == "max_connections"
                with pytest.raises(Exception, match="1008"):
                    ws.recv(timeout=5)
            assert len(fake.connection_attempts("stocks")) == 3
            wait_for(lambda: fake.subscriptions("stocks") == ["AM.AAPL"])
            assert fake.connections("stocks") == 1
            fake.play("stocks", SESSION, 0, 1)
            wait_for(lambda: len(run.got) == 1)
        finally:
            run.stop()


def test_drop_and_refused_upgrades_reconnect_and_resubscribe() -> None:
    with FakePolygonStream("k") as fake:
        run = Runner(fake, ["AM.AAPL", "AM.MSFT"])
        try:
            wait_for(lambda: len(fake.subscriptions("stocks")) == 2)
            fake.play("stocks", SESSION, 0, 1)
            wait_for(lambda: len(run.got) == 2)
            fake.refuse("stocks", 2)  # the first two reconnects get HTTP 503
            fake.drop("stocks")
            wait_for(lambda: len(fake.subscriptions("stocks")) == 2)
            attempts = fake.connection_attempts("stocks")
            assert len(attempts) == 4  # first, two refused, the one that worked
            assert attempts[3] - attempts[2] >= 0.05  # the backoff we passed was used
            subscribes = [m for m in fake.received("stocks") if m["action"] == "subscribe"]
            assert len(subscribes) == 2
            assert sorted(subscribes[1]["params"].split(",")) == ["AM.AAPL", "AM.MSFT"]
            fake.play("stocks", SESSION, 1, 2)
            wait_for(lambda: len(run.got) == 4)
            starts = sorted({a.start_timestamp for a in run.got})
            assert starts == [OPEN_MS, OPEN_MS + 60_000]  # nothing replayed
        finally:
            run.stop()
        assert run.error is None


def test_protocol_statuses_for_a_raw_json_client() -> None:
    with FakePolygonStream("k", auth_timeout=0.3) as fake:
        with connect(f"{fake.url}/stocks") as ws:
            ws.recv(timeout=5)

            def ask(msg: dict[str, Any] | str) -> list[dict[str, Any]]:
                ws.send(msg if isinstance(msg, str) else json.dumps(msg))
                out: list[dict[str, Any]] = json.loads(ws.recv(timeout=5))
                return out

            assert ask({"action": "subscribe", "params": "T.AAPL"})[0]["message"] == (
                "not authorized"
            )
            assert ask("{oops")[0]["message"] == "invalid syntax"
            assert ask({"action": "auth", "params": "k"})[0]["status"] == "auth_success"
            acks = ask({"action": "subscribe", "params": "T.AAPL,ZZ.AAPL,AM.*"})
            assert [a["message"] for a in acks] == [
                "subscribed to: T.AAPL",
                "invalid subscription: ZZ.AAPL",
                "subscribed to: AM.*",
            ]
            acks = ask({"action": "unsubscribe", "params": "T.AAPL"})
            assert acks[0]["message"] == "unsubscribed to: T.AAPL"
            assert fake.subscriptions("stocks") == ["AM.*"]
            fake.send_status("stocks", "error", "maintenance", close=1011)
            assert json.loads(ws.recv(timeout=5))[0]["message"] == "maintenance"
            with pytest.raises(Exception, match="1011"):
                ws.recv(timeout=5)
        with connect(f"{fake.url}/options") as ws:
            ws.recv(timeout=5)
            assert json.loads(ws.recv(timeout=5))[0]["status"] == "auth_timeout"
        with pytest.raises(Exception, match="404"):
            connect(f"{fake.url}/nosuchmarket").close()
        assert fake.connection_attempts("options") and fake.connections("options") == 0
