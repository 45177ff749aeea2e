"""Fixtures for the stream tests: the websocket and REST fakes on loopback, a settable clock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from contracts.calendar import session_open_close
from live.market.stream.hub import StreamHub
from tests.fakes.alpaca_data_stream import FakeAlpacaDataStream
from tests.fakes.alpaca_market import AlpacaMarketFake
from tests.fakes.market import FakeMarket
from tests.fakes.ws_server import wait_for as poll

KEY, SECRET = "stream-key-id", "s3cr3t-MUST-NOT-LEAK"
SESSION = date(2024, 3, 15)  # FakeMarket's as_of; a Friday on daylight time (13:30-20:00 UTC)
OPEN: datetime = session_open_close(SESSION)[0].tz_convert("UTC").to_pydatetime()


class Clock:
    """A wall clock the test sets (the stream's lag and gap checks read it)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def at(self, minute: float, settle_s: float = 10.0) -> None:
        """Set to ``minute`` minutes after the open plus ``settle_s`` seconds."""
        with self._lock:
            self.now = OPEN + timedelta(minutes=minute, seconds=settle_s)


def wait_for(pred: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``pred`` until truthy (returns it) or fail naming ``what``."""
    try:
        return poll(pred, timeout)
    except AssertionError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


@pytest.fixture
def market() -> FakeMarket:
    return FakeMarket()


@pytest.fixture
def ws(market: FakeMarket) -> Iterator[FakeAlpacaDataStream]:
    with FakeAlpacaDataStream(KEY, SECRET, market=market) as fake:
        yield fake


@pytest.fixture
def rest(market: FakeMarket) -> Iterator[AlpacaMarketFake]:
    fake = AlpacaMarketFake(market, key=KEY, secret=SECRET)
    with fake:
        yield fake


@pytest.fixture
def env(ws: FakeAlpacaDataStream, rest: AlpacaMarketFake) -> dict[str, str]:
    return {
        "ALPACA_API_KEY": KEY,
        "ALPACA_SECRET_KEY": SECRET,
        "ALPACA_DATA_STREAM_URL": f"ws://127.0.0.1:{ws.port}",
        "ALPACA_DATA_URL": rest.url,
        "ALPACA_FEED": "iex",
    }


@pytest.fixture
def clock() -> Clock:
    return Clock(OPEN - timedelta(minutes=5))


@pytest.fixture
def hub() -> Iterator[StreamHub]:
    h = StreamHub()
    yield h
    h.close_all()
