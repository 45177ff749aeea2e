"""Fixtures for source tests: the vendor fakes, and sources pointed at them with fake time."""

from __future__ import annotations

import pytest

from alpaca_improved_pipelines.sources.vendors.alpaca import AlpacaSource
from alpaca_improved_pipelines.sources.vendors.polygon import PolygonSource
from tests.fakes.fixtures import *  # noqa: F403 - the shared fake fixtures
from tests.fakes.fixtures import FakeClock


@pytest.fixture
def alpaca_source(vendor_env: dict[str, str], fake_clock: FakeClock) -> AlpacaSource:
    """AlpacaSource on the fakes; time is fake, so backoffs and rate waits cost nothing."""
    return AlpacaSource(
        data_url=vendor_env["ALPACA_DATA_URL"],
        trading_url=vendor_env["ALPACA_TRADING_URL"],
        timeout_s=1.0,
        page_limit=500,
    ).with_runtime(fake_clock.runtime())


@pytest.fixture
def polygon_source(vendor_env: dict[str, str], fake_clock: FakeClock) -> PolygonSource:
    """PolygonSource on the fake; small pages so pagination is exercised."""
    return PolygonSource(
        base_url=vendor_env["POLYGON_BASE_URL"], timeout_s=1.0, page_limit=200
    ).with_runtime(fake_clock.runtime())
