"""Pytest fixtures for the vendor fakes; import them into a conftest (``from ... import *``).

Every fake binds 127.0.0.1 on an ephemeral port for one test and is shut down after it, so
fault queues and request logs never leak between tests.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from alpaca_improved_pipelines.sources.synthetic_market import daily_path
from alpaca_improved_pipelines.sources.vendors.ratelimit import Runtime
from tests.fakes.alpaca_market import AlpacaMarketFake
from tests.fakes.alpaca_trading import AlpacaTradingFake
from tests.fakes.market import FakeMarket
from tests.fakes.polygon import PolygonFake

# Distinctive values so a test can grep logs, metadata and errors for any leak.
ALPACA_KEY = "AKLEAKCHECK7Q2ZP0XJ"
ALPACA_SECRET = "sEcReTlEaKcHeCk9w8v7u6t5s4r3q2p1"
POLYGON_KEY = "pOlYgOnLeAkChEcK5x4c3v2b1n"
SECRETS = (ALPACA_KEY, ALPACA_SECRET, POLYGON_KEY)


@dataclass
class FakeClock:
    """A clock that only moves when the code under test sleeps (records every sleep)."""

    now: float = field(default_factory=time.time)
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def runtime(self, seed: int = 0) -> Runtime:
        return Runtime(clock=self.clock, sleep=self.sleep, rng=random.Random(seed))


@pytest.fixture(scope="session")
def warm_synthetic() -> None:
    """Build the calendar and the synthetic market factor once, outside any request timeout."""
    daily_path(7, "SPY")


@pytest.fixture
def fake_market(warm_synthetic: None) -> FakeMarket:
    return FakeMarket(seed=7)


@pytest.fixture
def alpaca_market(fake_market: FakeMarket) -> Iterator[AlpacaMarketFake]:
    with AlpacaMarketFake(
        fake_market, key=ALPACA_KEY, secret=ALPACA_SECRET, timeout_sleep_s=1.5
    ) as fake:
        yield fake  # type: ignore[misc]
    assert not fake.errors, fake.errors


@pytest.fixture
def alpaca_trading(fake_market: FakeMarket) -> Iterator[AlpacaTradingFake]:
    with AlpacaTradingFake(
        fake_market, key=ALPACA_KEY, secret=ALPACA_SECRET, timeout_sleep_s=1.5
    ) as fake:
        yield fake  # type: ignore[misc]
    assert not fake.errors, fake.errors


@pytest.fixture
def polygon_fake(fake_market: FakeMarket) -> Iterator[PolygonFake]:
    with PolygonFake(fake_market, key=POLYGON_KEY, timeout_sleep_s=1.5) as fake:
        yield fake  # type: ignore[misc]
    assert not fake.errors, fake.errors


@pytest.fixture
def vendor_env(
    monkeypatch: pytest.MonkeyPatch,
    alpaca_market: AlpacaMarketFake,
    alpaca_trading: AlpacaTradingFake,
    polygon_fake: PolygonFake,
) -> dict[str, str]:
    """Keys and base URLs pointing every vendor at its fake (source left to the test)."""
    env = {
        "ALPACA_API_KEY": ALPACA_KEY,
        "ALPACA_SECRET_KEY": ALPACA_SECRET,
        "POLYGON_API_KEY": POLYGON_KEY,
        "ALPACA_DATA_URL": alpaca_market.url,
        "ALPACA_TRADING_URL": alpaca_trading.url,
        "POLYGON_BASE_URL": polygon_fake.url,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for var in (
        "ALPACA_IMPROVED_SOURCE",
        "ALPACA_IMPROVED_FALLBACK_SOURCE",
        "ALPACA_FEED",
        "ALPACA_IMPROVED_ADJUSTMENT",
        "ALPACA_IMPROVED_SYMBOLS",
    ):
        monkeypatch.delenv(var, raising=False)
    return env


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
