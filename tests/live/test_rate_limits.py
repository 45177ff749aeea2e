"""Property 7 (rate-limit compliance) and property 8 (clock skew) against the fake."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from live.clock import SimClock
from tests.fakes.alpaca_broker import FakeAlpacaBroker
from tests.live.conftest import make_alpaca


def test_remaining_zero_is_honoured_before_any_429(fake: FakeAlpacaBroker) -> None:
    fake.rate_limit, fake.rate_window_s = 5, 1.0
    alpaca = make_alpaca(fake, requests_per_minute=1_000)  # only the server's headers limit us
    for _ in range(11):
        assert alpaca.account().equity > 0
    assert fake.throttled == []  # X-Ratelimit-Remaining: 0 made us wait for the reset
    times = [t for t, _, _ in fake.requests]
    for t0 in times:
        assert sum(1 for t in times if t0 <= t < t0 + 1.0) <= 5


def test_client_side_budget_is_at_most_n_per_minute() -> None:
    clock = SimClock(datetime(2024, 3, 1, 15, tzinfo=UTC))  # sleeps are virtual: fast
    with FakeAlpacaBroker(
        api_key="PKTESTKEY0123456789", secret_key="sEcReT-should-never-be-logged-0123456789"
    ) as fake:
        alpaca = make_alpaca(fake, clock=clock, requests_per_minute=5)
        for _ in range(12):
            alpaca.clock()
        sent = alpaca.session.sent_at
    assert len(sent) == 12
    for t0 in sent:
        assert sum(1 for t in sent if t0 <= t < t0 + 60.0) <= 5


@pytest.mark.parametrize("skew", [300.0, -300.0])
def test_reset_is_measured_on_the_servers_clock(fake: FakeAlpacaBroker, skew: float) -> None:
    fake.date_skew_s = skew  # Date and X-Ratelimit-Reset both 5 minutes off our clock
    alpaca = make_alpaca(fake)
    fake.queue_faults("GET /v2/account", ["429"])
    start = time.monotonic()
    alpaca.account()
    waited = time.monotonic() - start
    assert 0.5 <= waited <= 4.0  # ~1 s reset; neither 5 minutes nor zero
    ((at, reset),) = fake.throttled
    assert min(t for t, _, _ in fake.requests if t > at) >= reset - 0.01  # none before reset
