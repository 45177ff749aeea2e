"""End to end, as a user: backfill 4 sessions with the product's command, open the Dagster UI
on that instance in headless Chromium, and read what the pages show.

Fixtures (conftest.py) materialize ``market_data_job`` for 2024-01-02..2024-01-05 on SPY, AAPL
into a temp data root and serve it with ``dagster-webserver``. Each test leaves a screenshot of
its page in its pytest tmp dir (also on failure).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

UI_TIMEOUT_MS = 30_000
MARKET_DATA_ASSETS = ("stock_bars_1m", "stock_bars_1d", "stock_bars_5m", "stock_bars_1h")


@pytest.fixture
def shot(page: Any, tmp_path: Path) -> Iterator[Path]:
    """Path of the screenshot taken of ``page`` when the test ends (pass or fail)."""
    path = tmp_path / "page.png"
    yield path
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")


def expect_visible(locator: Any) -> None:
    from playwright.sync_api import expect

    expect(locator).to_be_visible(timeout=UI_TIMEOUT_MS)


def test_asset_graph_renders(page: Any, webserver: str, location: str, shot: Path) -> None:
    """The market_data group's lineage graph draws a node per bar asset and the downstream one."""
    # the graph only renders nodes inside the viewport, and the research assets downstream of the
    # bars (sweeps, the ML model) make it taller than a laptop screen
    page.set_viewport_size({"width": 1600, "height": 2400})
    page.goto(f"{webserver}/locations/{quote(location, safe='')}/asset-groups/market_data/lineage")
    for name in (*MARKET_DATA_ASSETS, "indicators_1d"):
        expect_visible(page.get_by_text(name, exact=True).first)
    # A node of a materialized asset shows its latest event and its check summary.
    expect_visible(page.get_by_text("Latest event").first)
    expect_visible(page.get_by_text("Asset checks").first)


def test_partition_status_renders(page: Any, webserver: str, shot: Path) -> None:
    """stock_bars_1d's partitions tab counts the 4 backfilled sessions and 2024-01-05 is one."""
    page.goto(f"{webserver}/assets/stock_bars_1d?view=partitions")
    expect_visible(page.get_by_text("Materialized (4)", exact=True))
    expect_visible(page.get_by_text(re.compile(r"^Missing \(\d+\)$")))
    expect_visible(page.get_by_text("Failed (0)", exact=True))

    page.get_by_placeholder("Filter by name").fill("2024-01-05")
    page.get_by_text("2024-01-05", exact=True).first.click()
    page.wait_for_url(re.compile(r"partition=2024-01-05"), timeout=UI_TIMEOUT_MS)
    # The detail pane: the key with a "Materialized" badge and the run/job that wrote it.
    expect_visible(page.get_by_text("Materialized", exact=True))
    expect_visible(page.get_by_text("Latest materialization", exact=True))
    expect_visible(page.get_by_role("link", name="market_data_job", exact=True))


def test_check_result_renders(page: Any, webserver: str, shot: Path) -> None:
    """stock_bars_1d's checks tab lists pandera_schema as succeeded; its detail says Passed."""
    page.goto(f"{webserver}/assets/stock_bars_1d?view=checks")
    # The list row of pandera_schema (and of no other check) carries a "Succeeded" status.
    row = (
        page.locator("div")
        .filter(has=page.get_by_text("pandera_schema", exact=True))
        .filter(has_not_text="expectations")
        .filter(has_not_text="anomalies")
        .filter(has_text="Succeeded")
    )
    expect_visible(row.last)

    page.get_by_text("pandera_schema", exact=True).first.click()
    page.wait_for_url(re.compile(r"checkDetail=pandera_schema"), timeout=UI_TIMEOUT_MS)
    expect_visible(page.get_by_text("This is a blocking asset check."))
    expect_visible(page.get_by_text("Evaluation result", exact=True))
    expect_visible(page.get_by_text("Passed", exact=True))
