"""Bulk decode of whole websocket frames (issue 11's ingest throughput) and batch booking.

The hot path reads alpaca-py's socket through ``_FrameReader``: one ``msgpack.unpackb`` per
frame straight into ``MinuteBar`` / ``OptionQuote`` tuples, routed per frame, booked under one
lock (``MinuteBook.apply_many``). These tests pin the alpaca-py seam it stands on (they fail if
alpaca-py stops reading ``self._ws`` or treats the placeholder message differently), prove the
data_timeout and reconnect bookkeeping still see the data, that control messages inside a data
frame keep their order, and that booking a batch is exactly booking its bars one by one.
"""

from __future__ import annotations

import inspect
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgpack
from alpaca.data.live import websocket as alpaca_ws
from hypothesis import given, settings
from hypothesis import strategies as st

from live.market.stream.alpaca_source import (
    DECODED,
    DECODED_MSG,
    AlpacaConnection,
    _FrameReader,
    config_from_env,
)
from live.market.stream.hub import StreamHub
from live.market.stream.minutes import MinuteBook
from live.market.stream.model import FeedState, FeedStatus, MinuteBar
from live.market.stream.service import MarketStream
from tests.fakes.alpaca_data_stream import FakeAlpacaDataStream
from tests.stream.conftest import OPEN, SESSION, Clock, wait_for

SYMBOLS = ["AAPL", "MSFT", "SPY"]


def _connection(ms: MarketStream, hub: StreamHub) -> AlpacaConnection:
    conn = hub.connection(next(k for k in hub._shared if k[2] == "stocks"))
    assert isinstance(conn, AlpacaConnection)
    return conn


def test_alpaca_py_seam_the_bulk_decoder_stands_on() -> None:
    """alpaca-py 0.44's receive loop: reads ``self._ws.recv()``, unpacks it with msgpack, treats
    a message with a market-data ``T`` and an ``S`` as data (the staleness clock); ``_connect``
    assigns the socket to ``self._ws``. If any of this changes, the bulk path must be re-checked."""
    consume = inspect.getsource(alpaca_ws.DataStream._consume)
    assert "self._ws.recv()" in consume and "msgpack.unpackb(r)" in consume
    assert "_is_market_data(msg)" in consume and "await self._dispatch(msg)" in consume
    assert "self._ws = await" in inspect.getsource(alpaca_ws.DataStream._connect)
    assert alpaca_ws._is_market_data(dict(DECODED_MSG))


def test_frames_reach_every_consumer_decoded_in_bulk(
    ws: FakeAlpacaDataStream, env: dict, hub: StreamHub, clock: Clock
) -> None:
    """Every bar arrives through the frame reader (none through alpaca-py's per-message
    dispatch), with the exchange's minute; a batch consumer and a per-bar consumer on the same
    socket each get only their symbols, in order."""
    seen: list[MinuteBar] = []
    ms = MarketStream(
        SYMBOLS, env=env, hub=hub, clock=clock, backfill=False, gap_interval=3600,
        on_bar=seen.append,
    ).start()  # fmt: skip
    only_spy: list[MinuteBar] = []
    cfg = config_from_env(env)
    key = ("alpaca", cfg.key_id, "stocks", cfg.feed)
    other = hub.subscribe(key, lambda *a: None, {"bars": ["SPY"]}, on_bar=only_spy.append)  # type: ignore[arg-type,return-value]
    wait_for(lambda: len(ws.subscriptions("iex").get("bars", [])) == 3, what="subscribed")
    sent = ws.play("iex", SESSION, 0, 4)
    wait_for(lambda: len(seen) == len(sent), what="every bar")
    conn = _connection(ms, hub)
    assert isinstance(conn.stream._ws, _FrameReader)
    assert conn.stats.frames == 4 and conn.stats.messages == len(sent) == 12
    assert [(b.symbol, b.ts) for b in seen] == [
        (s, OPEN + timedelta(minutes=m)) for m in range(4) for s in sorted(SYMBOLS)
    ]
    assert all(b.source == "stream" and type(b) is MinuteBar for b in seen)
    assert [b.ts for b in only_spy] == [OPEN + timedelta(minutes=m) for m in range(4)]
    assert {b.symbol for b in only_spy} == {"SPY"}
    assert ms.book.counts() == {"new": 12, "revision": 0, "duplicate": 0}
    hub.unsubscribe(other)
    ms.close()


def test_bulk_frames_keep_alpaca_py_data_timeout_quiet(
    ws: FakeAlpacaDataStream, env: dict, hub: StreamHub, clock: Clock
) -> None:
    """With data_timeout 1 s and a frame every 0.3 s decoded in bulk, alpaca-py never calls the
    socket stale (its clock sees the placeholder message) and counts data as received (its
    backoff reset); once the frames stop, it does go stale."""
    statuses: list[FeedStatus] = []
    ms = MarketStream(
        SYMBOLS, env={**env, "ALPACA_STREAM_DATA_TIMEOUT": "1"}, hub=hub, clock=clock,
        backfill=False, gap_interval=3600, on_status=statuses.append,
    ).start()  # fmt: skip
    wait_for(lambda: len(ws.subscriptions("iex").get("bars", [])) == 3, what="subscribed")
    began = time.monotonic()
    for minute in range(9):  # ~2.7 s: well past the 1 s timeout
        ws.play("iex", SESSION, minute, minute + 1)
        time.sleep(0.3)
    conn = _connection(ms, hub)
    assert time.monotonic() - began > 2.5
    assert FeedState.STALE not in [s.state for s in statuses]
    assert len(ws.connection_attempts("iex")) == 1 and conn.stats.frames == 9
    assert conn.stream._data_received is True
    wait_for(
        lambda: FeedState.STALE in [s.state for s in statuses], timeout=5, what="STALE when mute"
    )
    ms.close()


class Recorder:
    """A sink recording what the connection hands the hub, call by call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Any]]] = []

    def __call__(self, channel: str, item: Any) -> None:
        self.calls.append((channel, [item]))

    def many(self, channel: str, items: list[Any]) -> None:
        self.calls.append((channel, list(items)))


def _wire(symbol: str, minute: int, kind: str = "b", close: float = 10.5) -> dict[str, Any]:
    ns = int((OPEN + timedelta(minutes=minute)).timestamp()) * 10**9
    return {"T": kind, "S": symbol, "o": 10.0, "h": 11.0, "l": 9.5, "c": close, "v": 1200} | {
        "t": msgpack.Timestamp.from_unix_nano(ns), "n": 7, "vw": 10.25,
    }  # fmt: skip


def test_control_messages_in_a_data_frame_keep_their_place() -> None:
    """A frame mixing an ack, bars, a 407, a revision, a malformed bar and an unknown control
    message: data go out in runs in order, the 407 is a state between them (data flowing again
    after it), the malformed bar is counted and skipped, alpaca-py gets the unknown message and
    the placeholder; a frame without data passes through untouched."""
    env = {"ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s", "ALPACA_FEED": "iex"}
    statuses: list[FeedStatus] = []
    sink = Recorder()
    conn = AlpacaConnection(config_from_env(env), "stocks", sink, statuses.append)  # type: ignore[arg-type]
    broken = _wire("MSFT", 1) | {"o": "not a price"}
    frame = msgpack.packb(
        [
            {"T": "subscription", "bars": []},
            _wire("AAPL", 0),
            {"T": "error", "code": 407, "msg": "slow client"},
            _wire("MSFT", 0),
            _wire("AAPL", 0, "u", close=10.75),
            broken,
            {"T": "success", "msg": "something new"},
        ]
    )
    back = msgpack.unpackb(conn._decode(frame))
    assert back == [{"T": "success", "msg": "something new"}, {"T": "b", "S": DECODED}]
    assert [(ch, [(b.symbol, b.close, b.source) for b in items]) for ch, items in sink.calls] == [
        ("bars", [("AAPL", 10.5, "stream")]),
        ("bars", [("MSFT", 10.5, "stream")]),
        ("updatedBars", [("AAPL", 10.75, "revision")]),
    ]
    assert sink.calls[0][1][0].ts == OPEN and sink.calls[0][1][0].ts.tzinfo is not None
    assert [s.state for s in statuses] == [FeedState.SLOW_CLIENT, FeedState.STREAMING]
    assert (conn.stats.messages, conn.stats.malformed, conn.stats.frames) == (4, 1, 1)
    handshake = msgpack.packb([{"T": "success", "msg": "authenticated"}])
    assert conn._decode(handshake) is handshake
    assert conn._decode(b"\xc1") == b"\xc1"  # undecodable: alpaca-py raises its own error


def test_bulk_times_are_the_exchange_times_to_the_microsecond() -> None:
    """Timestamps decoded as integer nanoseconds become the same aware datetimes msgpack's
    ``Timestamp.to_datetime`` gives (truncated to microseconds), for quotes and for the vendor
    dicts handed on as events (an option trade here)."""
    env = {"ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s", "ALPACA_OPTIONS_FEED": "indicative"}
    sink = Recorder()
    conn = AlpacaConnection(config_from_env(env), "options", sink, lambda s: None)  # type: ignore[arg-type]
    ns = int(OPEN.timestamp()) * 10**9 + 123_456_789
    t = msgpack.Timestamp.from_unix_nano(ns)
    occ = "SPY240419C00500000"
    quote = {"T": "q", "S": occ, "t": t, "bx": "C", "bp": 1.0, "bs": 5, "ax": "X", "ap": 1.1}
    trade = {"T": "t", "S": occ, "t": t, "x": "C", "p": 1.05, "s": 2, "c": "I"}
    assert conn._decode(msgpack.packb([quote | {"as": 7}, trade])) == msgpack.packb([DECODED_MSG])
    (ch1, [q]), (ch2, [tr]) = sink.calls
    assert (ch1, ch2) == ("quotes", "trades")
    assert q.ts == t.to_datetime() == OPEN + timedelta(microseconds=123_456)
    assert (q.symbol, q.bid, q.ask, q.bid_size, q.ask_size, q.bid_exchange) == (
        occ, 1.0, 1.1, 5.0, 7.0, "C",
    )  # fmt: skip
    assert tr["t"] == t.to_datetime() and tr["t"].tzinfo is not None and tr["p"] == 1.05


OUTCOME_BARS = st.lists(
    st.tuples(
        st.sampled_from(["AAPL", "MSFT", "SPY", "QQQ"]),
        st.integers(0, 3),
        st.sampled_from(["stream", "revision", "backfill"]),
        st.integers(0, 2),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(OUTCOME_BARS, st.integers(0, 3)), max_size=8))
def test_apply_many_is_applying_one_by_one(frames: list[Any]) -> None:
    """Any sequence of batches, fresh whole minutes (the fast path) mixed with duplicates,
    revisions, backfills and reordering (the per-bar path), gives the book, the counts, the
    last minutes and the changed bars that applying the same bars one at a time gives."""
    t0 = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
    batches: list[list[MinuteBar]] = []
    for f in frames:
        if isinstance(f, int):  # one minute of every symbol, unseen or not
            rows = [(s, f, "stream", 0) for s in ("AAPL", "MSFT", "SPY", "QQQ")]
        else:
            rows = f
        batches.append(
            [
                MinuteBar(s, t0 + timedelta(minutes=m), 1.0, 2.0, 0.5, 1.0 + v, 10.0, 1.2, 3, src)  # type: ignore[arg-type]
                for s, m, src, v in rows
            ]
        )
    bulk, single = MinuteBook(), MinuteBook()
    for batch in batches:
        changed = bulk.apply_many(batch)
        assert changed == [b for b in batch if single.apply(b) != "duplicate"]
    session = date(2026, 3, 10)
    assert bulk.bars(session).equals(single.bars(session))
    for symbol in ("*", "AAPL", "MSFT", "SPY", "QQQ"):
        assert bulk.counts(symbol) == single.counts(symbol)
        if symbol != "*":
            assert bulk.last_ts(symbol) == single.last_ts(symbol)
            assert bulk.minutes(symbol, session) == single.minutes(symbol, session)
