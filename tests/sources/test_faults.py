"""Every fault knob, through the real clients, for both vendors, with its expected outcome.

Outcomes: transient faults succeed after one retry; malformed or refused answers fail at once
(one request, no retry) with a message naming the cause; page faults either heal (empty page with
a token, duplicate page) or fail loudly (a cyclic token).
"""

from __future__ import annotations

import datetime as dt

import pytest

from alpaca_improved_pipelines.sources import synthetic_bars
from alpaca_improved_pipelines.sources.vendors.errors import (
    PermanentVendorError,
    TransientVendorError,
)
from tests.fakes.fixtures import SECRETS, FakeClock

SESSION = dt.date(2024, 3, 15)
SYMBOLS = ("AAPL", "SPY")
PREFIX = {"alpaca": "/v2/stocks/bars", "polygon": "/v2/aggs"}
TRANSIENT = ["429", "500", "502", "503", "504", "timeout", "disconnect", "html"]
PERMANENT = {
    "truncated": "not valid JSON",
    "empty_object": "has no '",
    "401": "keys were rejected",
    "403": "HTTP 403",
    "403_plan": "plan does not permit",
    "301": "redirect refused",
}
VENDORS = ["alpaca", "polygon"]


def setup(request: pytest.FixtureRequest, vendor: str):  # noqa: ANN201 - test helper
    src = request.getfixturevalue(f"{vendor}_source")
    fake = request.getfixturevalue("alpaca_market" if vendor == "alpaca" else "polygon_fake")
    return src, fake


def expected() -> object:
    return synthetic_bars.minute_bars(7, SYMBOLS, SESSION).drop("source")


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("fault", TRANSIENT)
def test_transient_fault_succeeds_after_one_retry(
    request: pytest.FixtureRequest, vendor: str, fault: str, fake_clock: FakeClock
) -> None:
    src, fake = setup(request, vendor)
    fake.queue_faults(PREFIX[vendor], [fault])
    frame = src.stock_bars(SYMBOLS, SESSION, "1Min")
    assert frame.drop("source").equals(expected())
    assert src.stats["retries"] == 1
    assert len(fake.hits(PREFIX[vendor])) == src.stats["pages"] + 1
    assert len(fake_clock.sleeps) == 1, fake_clock.sleeps


@pytest.mark.parametrize("vendor", VENDORS)
def test_429_waits_for_the_reset_header(
    request: pytest.FixtureRequest, vendor: str, fake_clock: FakeClock
) -> None:
    src, fake = setup(request, vendor)
    fake.reset_after_s = 5.0
    fake.queue_faults(PREFIX[vendor], ["429"])
    src.stock_bars(SYMBOLS, SESSION, "1Day")
    assert 3.5 <= fake_clock.sleeps[0] <= 6.5  # the reset, not a 0.5 s jittered backoff


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("fault", sorted(PERMANENT))
def test_permanent_fault_fails_once_with_a_clear_message(
    request: pytest.FixtureRequest, vendor: str, fault: str, fake_clock: FakeClock
) -> None:
    src, fake = setup(request, vendor)
    fake.queue_faults(PREFIX[vendor], [fault])
    with pytest.raises(PermanentVendorError) as info:
        src.stock_bars(SYMBOLS, SESSION, "1Min")
    message = str(info.value)
    assert PERMANENT[fault] in message, message
    assert vendor in message
    assert not any(s in message for s in SECRETS)
    assert len(fake.hits(PREFIX[vendor])) == 1, "a permanent error must not be retried"
    assert fake_clock.sleeps == []
    assert info.value.allow_retries is False  # Dagster will not retry the partition either


@pytest.mark.parametrize("vendor", VENDORS)
def test_persistent_transient_fault_gives_up_after_the_budget(
    request: pytest.FixtureRequest, vendor: str, fake_clock: FakeClock
) -> None:
    src, fake = setup(request, vendor)
    fake.set_fault(PREFIX[vendor], "503")
    with pytest.raises(TransientVendorError, match="gave up after 4 attempts"):
        src.stock_bars(SYMBOLS, SESSION, "1Day")
    assert len(fake.hits(PREFIX[vendor])) == 4 and len(fake_clock.sleeps) == 3
    assert all(0 <= s <= src.backoff_max_s for s in fake_clock.sleeps), fake_clock.sleeps


@pytest.mark.parametrize("vendor", VENDORS)
def test_html_error_body_is_classified_without_json(
    request: pytest.FixtureRequest, vendor: str
) -> None:
    src, fake = setup(request, vendor)
    fake.set_fault(PREFIX[vendor], "html")
    with pytest.raises(TransientVendorError) as info:
        src.stock_bars(SYMBOLS, SESSION, "1Day")
    assert "HTTP 502" in str(info.value) and "Bad Gateway" in str(info.value)


@pytest.mark.parametrize("vendor", VENDORS)
def test_cyclic_page_token_fails(request: pytest.FixtureRequest, vendor: str) -> None:
    src, fake = setup(request, vendor)
    fake.queue_faults(PREFIX[vendor], ["ok", "cyclic_token"])
    with pytest.raises(PermanentVendorError, match="repeated"):
        src.stock_bars(SYMBOLS, SESSION, "1Min")
    assert len(fake.hits(PREFIX[vendor])) == 2  # page 2 points back at itself: stop there


@pytest.mark.parametrize("vendor", VENDORS)
def test_empty_page_with_token_is_followed(request: pytest.FixtureRequest, vendor: str) -> None:
    src, fake = setup(request, vendor)
    fake.queue_faults(PREFIX[vendor], ["ok", "empty_page_token"])
    frame = src.stock_bars(SYMBOLS, SESSION, "1Min")
    assert frame.drop("source").equals(expected())


@pytest.mark.parametrize("vendor", VENDORS)
def test_duplicate_page_is_deduplicated(request: pytest.FixtureRequest, vendor: str) -> None:
    src, fake = setup(request, vendor)
    fake.queue_faults(PREFIX[vendor], ["ok", "duplicate_page"])
    frame = src.stock_bars(SYMBOLS, SESSION, "1Min")
    assert frame.drop("source").equals(expected())
    assert src.stats["duplicates_dropped"] > 0


@pytest.mark.parametrize("vendor", VENDORS)
def test_page_cap_stops_an_endless_walk(request: pytest.FixtureRequest, vendor: str) -> None:
    src, fake = setup(request, vendor)
    fake.set_fault(PREFIX[vendor], "empty_page_token")  # new token every time, never data
    with pytest.raises(PermanentVendorError, match="still more pages after"):
        src.stock_bars(SYMBOLS, SESSION, "1Day")
    assert len(fake.hits(PREFIX[vendor])) == src.max_pages


def test_vendor_clients_do_not_retry_on_their_own(
    alpaca_source, polygon_source, alpaca_market, polygon_fake, fake_clock: FakeClock
) -> None:
    """alpaca-py (fixed 3 s sleeps on 429/504) and urllib3's retries are switched off: one
    request per attempt of ours, and no real sleeping."""
    alpaca_market.queue_faults("/v2/stocks/bars", ["504", "504"])
    polygon_fake.queue_faults("/v2/aggs", ["503", "429"])
    alpaca_source.stock_bars(("SPY",), SESSION, "1Day")
    polygon_source.stock_bars(("SPY",), SESSION, "1Day")
    assert len(alpaca_market.hits("/v2/stocks/bars")) == 3
    assert len(polygon_fake.hits("/v2/aggs")) == 3
    assert len(fake_clock.sleeps) == 4
