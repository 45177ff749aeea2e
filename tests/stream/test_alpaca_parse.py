"""``parse``: vendor frames to our types, with one shared datetime per bar start.

A minute's frame carries the same msgpack Timestamp for every symbol; parse converts it once
and every bar of that minute holds the same (immutable) datetime. These tests pin that the
shared value is exact, that different minutes never share one, that the cache stays bounded,
and that quotes and JSON text timestamps keep their own exact times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgpack

from live.market.stream import alpaca_source
from live.market.stream.alpaca_source import parse
from live.market.stream.model import MinuteBar, OptionQuote

OPEN = datetime(2024, 3, 15, 13, 30, tzinfo=UTC)


def wire_bar(symbol: str, start: datetime, t_kind: str = "b") -> dict:
    """A bar as alpaca-py hands it over: unpacked msgpack, ``t`` a Timestamp."""
    t = msgpack.Timestamp.from_unix_nano(int(start.timestamp()) * 10**9)
    packed = msgpack.packb([{"T": t_kind, "S": symbol, "o": 1, "h": 2, "l": 0.5, "c": 1.5} | {
        "v": 100, "t": t, "n": 3, "vw": 1.25,
    }])  # fmt: skip
    return msgpack.unpackb(packed)[0]


def test_bars_of_one_minute_share_one_exact_datetime() -> None:
    a = parse("stocks", "bars", wire_bar("AAPL", OPEN))
    b = parse("stocks", "bars", wire_bar("MSFT", OPEN))
    later = parse("stocks", "updatedBars", wire_bar("AAPL", OPEN + timedelta(minutes=1), "u"))
    assert isinstance(a, MinuteBar) and isinstance(b, MinuteBar) and isinstance(later, MinuteBar)
    assert a.ts == OPEN and a.ts.tzinfo is not None and a.ts.utcoffset() == timedelta(0)
    assert b.ts is a.ts  # converted once, shared
    assert later.ts == OPEN + timedelta(minutes=1) and later.source == "revision"
    assert (a.symbol, a.open, a.close, a.volume, a.trade_count) == ("AAPL", 1.0, 1.5, 100.0, 3)


def test_bar_start_cache_stays_bounded_and_correct() -> None:
    for m in range(5000):
        bar = parse("stocks", "bars", wire_bar("SPY", OPEN + timedelta(minutes=m)))
        assert isinstance(bar, MinuteBar) and bar.ts == OPEN + timedelta(minutes=m)
    assert len(alpaca_source._BAR_STARTS) <= 4096


def test_quotes_and_text_times_keep_their_own_exact_time() -> None:
    ns = int(OPEN.timestamp()) * 10**9 + 123_456_789
    t = msgpack.Timestamp.from_unix_nano(ns)
    msg = {"T": "q", "S": "SPY240419C00500000", "t": t, "bp": 1.0, "ap": 1.1, "bs": 5, "as": 7}
    quote = parse("options", "quotes", msgpack.unpackb(msgpack.packb(msg)))
    assert isinstance(quote, OptionQuote)
    assert quote.ts == OPEN + timedelta(microseconds=123_456)
    text = parse("stocks", "bars", {"S": "AAPL", "t": "2024-03-15T13:31:00Z"} | {
        "o": 1, "h": 1, "l": 1, "c": 1, "v": 1, "n": 1, "vw": 1,
    })  # fmt: skip
    assert isinstance(text, MinuteBar) and text.ts == OPEN + timedelta(minutes=1)
