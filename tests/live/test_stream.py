"""Alpaca's trade-update stream through alpaca-py's real TradingStream against a local websocket
fake: fills are booked between cycles without polling; duplicates, stale and malformed events
are harmless; a dropped or refused stream never stops trading (the poll catches up)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from live.brokers.alpaca import settings_from_env
from live.brokers.alpaca_stream import TradeUpdateStream, stream_url
from live.errors import LiveModeRefused
from live.journal import orders as jo
from live.orders.reports import OrderStatus
from live.runner.core import Runner
from tests.fakes.alpaca_broker import FakeAlpacaBroker
from tests.fakes.alpaca_stream import FakeTradeStream
from tests.live.conftest import alpaca_env
from tests.live.helpers import KEY, SECRET, T0, equity_ticket
from tests.live.runner_setup import alpaca_runner, make_home


def wait_for(pred: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def stream(fake: FakeAlpacaBroker) -> Iterator[FakeTradeStream]:
    with FakeTradeStream(KEY, SECRET) as s:
        s.attach(fake)
        yield s


def streaming_runner(
    tmp_path: Path, fake: FakeAlpacaBroker, stream: FakeTradeStream, secret: str = SECRET
) -> tuple[Runner, TradeUpdateStream]:
    env = {**alpaca_env(fake), "ALPACA_SECRET_KEY": secret}
    settings = settings_from_env(env=env)
    updates = TradeUpdateStream(settings, stream.url)
    runner = alpaca_runner(make_home(tmp_path), fake)
    runner.updates = updates.start()
    return runner, updates


@pytest.fixture
def listening(
    tmp_path: Path, fake: FakeAlpacaBroker, stream: FakeTradeStream
) -> Iterator[tuple[Runner, TradeUpdateStream]]:
    """A started runner whose trade-update stream is connected and listening."""
    runner, updates = streaming_runner(tmp_path, fake, stream)
    try:
        runner.start()
        wait_for(lambda: stream.listeners == 1, "the stream to listen")
        yield runner, updates
    finally:
        updates.close()


def resting_order(runner: Runner, fake: FakeAlpacaBroker, qty: float = 10) -> str:
    """An order the fake accepts and leaves open (auto fill off)."""
    fake.auto_fill = False
    ticket = equity_ticket(qty=qty)
    jo.record_decision(
        runner.j, "ma-spy", "2024-03-01", T0, [(0, ticket.intent, ticket.client_order_id)], T0
    )
    runner.manager.send(jo.get_order(runner.j, ticket.client_order_id))
    return ticket.client_order_id


def polls(fake: FakeAlpacaBroker) -> int:
    return sum(1 for _, method, path in fake.requests if method == "GET" and "/orders" in path)


def test_fills_are_booked_from_the_stream_without_polling(
    listening: tuple[Runner, TradeUpdateStream], fake: FakeAlpacaBroker, stream: FakeTradeStream
) -> None:
    runner, updates = listening
    cid = resting_order(runner, fake)
    assert jo.get_order(runner.j, cid).status is OrderStatus.NEW
    before = polls(fake)
    fake.fill(cid, qty=4)  # a partial fill, then the rest
    fake.fill(cid)
    wait_for(lambda: updates.stats.received >= 3, "new, partial_fill and fill events")
    runner._between_cycles()  # what the runner does every second while it waits
    row = jo.get_order(runner.j, cid)
    assert row.status is OrderStatus.FILLED and row.filled_qty == 10
    assert sorted(f.qty for f in jo.all_fills(runner.j)) == [4.0, 6.0]
    assert jo.saved_positions(runner.j) == {("ma-spy", "SPY"): 10.0}
    assert polls(fake) == before  # the stream did it, no REST poll
    sources = [
        r[0] for r in runner.j.rows("SELECT source FROM order_events WHERE client_order_id=?", cid)
    ]
    assert "stream" in sources
    assert updates.stats.last_event == "fill"


def test_duplicate_stale_and_malformed_events_are_harmless(
    listening: tuple[Runner, TradeUpdateStream], fake: FakeAlpacaBroker, stream: FakeTradeStream
) -> None:
    runner, updates = listening
    stream.duplicate = True
    cid = resting_order(runner, fake)
    order = fake.orders_with_cid(cid)[0]
    new_event = json.loads(json.dumps(order))  # the order as it was when "new"
    fake.fill(cid)
    stream.publish("new", new_event)  # a stale event after the fill (out of order)
    stream.publish_raw("{not json")
    stream.publish_raw(json.dumps({"stream": "trade_updates", "data": {"event": "fill"}}))
    stream.publish("fill", {**order, "filled_qty": "oops"})
    wait_for(
        lambda: updates.stats.received >= 6 and updates.stats.malformed >= 3,
        "every event, twice (the bad JSON frame is dropped by alpaca-py itself)",
    )
    runner._between_cycles()
    row = jo.get_order(runner.j, cid)
    assert row.status is OrderStatus.FILLED and row.filled_qty == 10
    assert [f.qty for f in jo.all_fills(runner.j)] == [10.0]  # booked once
    assert updates.stats.malformed == 3  # the order-less event once, the bad quantity twice


def test_a_dropped_stream_reconnects_and_the_poll_catches_what_it_missed(
    listening: tuple[Runner, TradeUpdateStream], fake: FakeAlpacaBroker, stream: FakeTradeStream
) -> None:
    runner, updates = listening
    cid = resting_order(runner, fake)
    stream.drop_connections()
    fake.fill(cid, qty=3)  # published to nobody: missed by the stream
    runner.cycle()  # the poll books it
    assert jo.get_order(runner.j, cid).filled_qty == 3
    wait_for(lambda: stream.listeners == 1, "alpaca-py to reconnect")
    fake.fill(cid)
    wait_for(lambda: updates.stats.last_event == "fill", "the fill after reconnecting")
    runner._between_cycles()
    assert jo.get_order(runner.j, cid).status is OrderStatus.FILLED
    assert sorted(f.qty for f in jo.all_fills(runner.j)) == [3.0, 7.0]


def test_a_refused_stream_never_stops_trading_or_leaks_the_secret(
    tmp_path: Path,
    fake: FakeAlpacaBroker,
    stream: FakeTradeStream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "WRONG-" + SECRET
    runner, updates = streaming_runner(tmp_path, fake, stream, secret=wrong)
    try:
        runner.start()
        wait_for(lambda: stream.auth_attempts >= 2, "alpaca-py to retry after the refusal")
        assert stream.listeners == 0
        fake.auto_fill = True
        counts = runner.cycle()  # decides and trades through REST as usual
        assert counts["submitted"] == 1
        assert jo.list_orders(runner.j)[0].status is OrderStatus.FILLED
    finally:
        updates.close()
    text = caplog.text
    assert SECRET not in text and wrong not in text and KEY not in text


def test_stream_url_follows_the_trading_host_and_its_guard(fake: FakeAlpacaBroker) -> None:
    paper = settings_from_env(env={"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET})
    assert stream_url(paper, env={}) == "wss://paper-api.alpaca.markets/stream"
    local = settings_from_env(env=alpaca_env(fake))
    assert stream_url(local, env={}) == fake.url.replace("http://", "ws://") + "/stream"
    with pytest.raises(LiveModeRefused, match="LIVE host"):
        stream_url(paper, env={"ALPACA_STREAM_URL": "wss://api.alpaca.markets/stream"})
    with pytest.raises(LiveModeRefused, match="not 'example.com'"):
        stream_url(paper, env={"ALPACA_STREAM_URL": "wss://example.com/stream"})
