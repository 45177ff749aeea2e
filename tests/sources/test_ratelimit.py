"""The request budget and the retry policy: transient-only, bounded, honouring vendor headers."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from alpaca_improved_pipelines.errors import SourceError
from alpaca_improved_pipelines.sources.vendors.alpaca import AlpacaSource
from alpaca_improved_pipelines.sources.vendors.errors import (
    PermanentVendorError,
    TransientVendorError,
)
from alpaca_improved_pipelines.sources.vendors.ratelimit import RateBudget, RetryPolicy
from tests.fakes.alpaca_market import AlpacaMarketFake
from tests.fakes.fixtures import ALPACA_KEY, ALPACA_SECRET, FakeClock


def flaky(errors: list[Exception]):  # noqa: ANN201 - test helper
    calls = []

    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "ok"

    return fn, calls


def test_503_503_200_succeeds_on_the_third_attempt(fake_clock: FakeClock) -> None:
    fn, calls = flaky([TransientVendorError("503"), TransientVendorError("503")])
    assert RetryPolicy(attempts=4, base_s=1.0).run(fn, fake_clock.runtime()) == "ok"
    assert len(calls) == 3 and len(fake_clock.sleeps) == 2
    assert 0 <= fake_clock.sleeps[0] <= 1.0 and 0 <= fake_clock.sleeps[1] <= 2.0  # full jitter


@pytest.mark.parametrize(
    "err", [PermanentVendorError("malformed"), SourceError("bad"), ValueError("schema")]
)
def test_non_transient_errors_are_never_retried(err: Exception, fake_clock: FakeClock) -> None:
    fn, calls = flaky([err])
    with pytest.raises(type(err)):
        RetryPolicy().run(fn, fake_clock.runtime())
    assert len(calls) == 1 and fake_clock.sleeps == []


def test_vendor_wait_wins_over_jitter_and_deadline_bounds_it(fake_clock: FakeClock) -> None:
    fn, calls = flaky([TransientVendorError("429", 429, retry_after=7.0)])
    RetryPolicy(base_s=0.1).run(fn, fake_clock.runtime())
    assert fake_clock.sleeps == [7.0]
    fn, calls = flaky([TransientVendorError("429", 429, retry_after=50.0)] * 3)
    with pytest.raises(TransientVendorError, match="gave up after 2"):
        RetryPolicy(attempts=4, deadline_s=60).run(fn, fake_clock.runtime())
    assert len(calls) == 2


def test_client_side_budget_per_rolling_minute(fake_clock: FakeClock) -> None:
    budget = RateBudget(5, fake_clock.runtime())
    sent = []
    for _ in range(12):
        budget.acquire()
        sent.append(fake_clock.now)
    for t in sent:
        assert sum(1 for u in sent if t <= u < t + 60) <= 5
    assert sent[-1] - sent[0] >= 120


def test_header_budget_waits_for_reset_bounded_against_skew(fake_clock: FakeClock) -> None:
    budget = RateBudget(None, fake_clock.runtime(), max_wait_s=65)
    budget.observe(
        {
            "X-Ratelimit-Limit": "200",
            "X-Ratelimit-Remaining": "0",
            "X-Ratelimit-Reset": str(fake_clock.now + 10),
        }
    )
    budget.acquire()
    assert fake_clock.sleeps == [pytest.approx(10.0)]
    budget.observe({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(fake_clock.now + 1e6)})
    budget.acquire()  # a reset a week away (skew or a hostile header) is capped
    assert fake_clock.sleeps[-1] == 65
    budget.observe({"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": str(fake_clock.now - 5)})
    budget.acquire()  # a reset in the past means go
    assert len(fake_clock.sleeps) == 2
    assert budget.retry_after({"X-Ratelimit-Reset": str(fake_clock.now + 3)}, 429) == pytest.approx(
        3.0
    )
    assert budget.retry_after({"X-Ratelimit-Reset": str(fake_clock.now + 3)}, 503) is None
    assert budget.retry_after({"Retry-After": "2"}, 503) == 2.0


def test_budget_keeps_a_rate_limited_server_from_ever_answering_429(
    monkeypatch: pytest.MonkeyPatch, warm_synthetic: None
) -> None:
    """Real time: the fake enforces 3 requests per 1 s window and announces it in headers."""
    monkeypatch.setenv("ALPACA_API_KEY", ALPACA_KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", ALPACA_SECRET)
    with AlpacaMarketFake(
        key=ALPACA_KEY, secret=ALPACA_SECRET, rate_limit=3, enforce_rate_limit=True, window_s=1.0
    ) as fake:
        src = AlpacaSource(
            data_url=fake.url, page_limit=100, timeout_s=2.0, requests_per_minute=None
        )
        start = time.monotonic()
        frame = src.stock_bars(("SPY",), dt.date(2024, 3, 15), "1Min")
        assert frame.height == 390 and fake.rejected == 0
        assert src.stats["pages"] == 4 and time.monotonic() - start < 10
        times = fake.request_times
        assert all(sum(1 for u in times if t <= u < t + 1.0) <= 3 for t in times)
