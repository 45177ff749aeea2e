"""Fixtures of the live-runner tests: the local fake Alpaca and clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from live.brokers.alpaca import AlpacaBroker, settings_from_env
from live.clock import Clock, SystemClock
from tests.fakes.alpaca_broker import FakeAlpacaBroker
from tests.live.helpers import CALL_A, CALL_B, KEY, SECRET


def alpaca_env(fake: FakeAlpacaBroker) -> dict[str, str]:
    """Environment of a runner pointed at ``fake`` (paper, loopback)."""
    return {"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET, "ALPACA_TRADING_URL": fake.url}


def make_alpaca(fake: FakeAlpacaBroker, clock: Clock | None = None, **kw: Any) -> AlpacaBroker:
    """The real alpaca-py client against the fake, with short timeouts."""
    kw.setdefault("timeout", (1.0, 0.5))
    return AlpacaBroker(settings_from_env(env=alpaca_env(fake)), clock or SystemClock(), **kw)


@pytest.fixture
def fake() -> Iterator[FakeAlpacaBroker]:
    with FakeAlpacaBroker(api_key=KEY, secret_key=SECRET, timeout_s=1.0) as f:
        f.prices.update({"SPY": 500.0, "QQQ": 400.0, CALL_A: 2.0, CALL_B: 1.0})
        yield f
        assert not f.errors, f.errors


@pytest.fixture
def alpaca(fake: FakeAlpacaBroker) -> AlpacaBroker:
    return make_alpaca(fake)
