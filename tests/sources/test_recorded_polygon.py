"""Real Polygon bodies (shared/vendor-fixtures) through the real client, our layer and parser."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import polars as pl
import pytest
from polygon import RESTClient

from alpaca_improved_pipelines.sources.vendors import parse
from alpaca_improved_pipelines.sources.vendors.polygon import PolygonSource
from tests.fakes.fixtures import POLYGON_KEY, FakeClock
from tests.fakes.recorded import FIXTURES, RecordedFake

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="vendor fixtures not present")


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordedFake]:
    monkeypatch.setenv("POLYGON_API_KEY", POLYGON_KEY)
    with RecordedFake() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def source(recorded: RecordedFake, fake_clock: FakeClock) -> PolygonSource:
    return PolygonSource(base_url=recorded.url, timeout_s=2).with_runtime(fake_clock.runtime())


def test_daily_aggs_across_dst_decode_exactly(
    recorded: RecordedFake, source: PolygonSource
) -> None:
    body = load("v2__aggs__ticker__AAPL__range__1__day__2005-04-01__2005-04-04.json")
    client = RESTClient(POLYGON_KEY, base=recorded.url, retries=0)
    decoded = client.get_aggs("AAPL", 1, "day", "2005-04-01", "2005-04-04")
    assert [a.timestamp for a in decoded] == [r["t"] for r in body["results"]]
    http = source.http()
    pages = list(
        http.pages(
            lambda: http.client.list_aggs(
                "AAPL", 1, "day", "2005-04-01", "2005-04-04", limit=5000, raw=True
            ),
            "aggs",
        )
    )
    frame = parse.polygon_aggs("AAPL", pages[0])
    for row, raw in zip(frame.iter_rows(named=True), body["results"], strict=True):
        assert (
            row["open"],
            row["high"],
            row["low"],
            row["close"],
            row["volume"],
            row["vwap"],
            row["trade_count"],
        ) == (raw["o"], raw["h"], raw["l"], raw["c"], raw["v"], raw["vw"], raw["n"])
    # 05:00Z (EST) and 04:00Z (EDT, after the 2005-04-03 switch) are both New York midnight.
    assert frame["session"].to_list() == [dt.date(2005, 4, 1), dt.date(2005, 4, 4)]
    assert frame["ts"].cast(pl.Int64).to_list() == [r["t"] * 1_000_000 for r in body["results"]]


def test_previous_close_shape(recorded: RecordedFake) -> None:
    body = load("v2__aggs__ticker__AAPL__prev.json")
    client = RESTClient(POLYGON_KEY, base=recorded.url, retries=0)
    prev = client.get_previous_close_agg("AAPL")
    assert prev[0].close == body["results"][0]["c"]
    frame = parse.polygon_aggs("AAPL", body["results"])
    assert frame["session"][0] == dt.date(2022, 4, 26)  # 1651003200000 = 04:00Z, EDT midnight


def test_contracts_follow_next_url_on_another_host(
    recorded: RecordedFake, source: PolygonSource
) -> None:
    first = load("v3__reference__options__contracts.json")
    second = load("v3__reference__options__contracts_Q_cursor=YXA9JTdCJTIySUQlMjIlM0ElMjIy.json")
    assert first["next_url"].startswith("https://api.massive.com/")  # not our host: path only
    raw = first["results"] + second["results"]
    client = RESTClient(POLYGON_KEY, base=recorded.url, retries=0)
    decoded = list(client.list_options_contracts())
    assert [c.ticker for c in decoded] == [r["ticker"] for r in raw]
    ours = source.option_contracts("A", dt.date(2022, 5, 2))
    assert ours["contract"].to_list() == [r["ticker"].removeprefix("O:") for r in raw]
    assert ours["strike"].to_list() == [float(r["strike_price"]) for r in raw]
    assert set(ours["expiry"]) == {dt.date(2022, 5, 20)} and set(ours["right"]) == {"C"}
    assert source.stats["pages"] == 2


def test_chain_snapshot_decodes_exactly(recorded: RecordedFake, source: PolygonSource) -> None:
    body = load("v3__snapshot__options__AAPL.json")
    raw = body["results"][0]
    client = RESTClient(POLYGON_KEY, base=recorded.url, retries=0)
    decoded = list(client.list_snapshot_options_chain("AAPL"))
    assert decoded[0].last_quote.last_updated == raw["last_quote"]["last_updated"]
    # The newest quote is 2022-04-29 13:44 New York, so that is the session it describes.
    chain = source.option_chain("AAPL", dt.date(2022, 4, 29))
    row = chain.row(0, named=True)
    assert row["contract"] == "AAPL230616C00150000" and row["right"] == "C"
    assert (row["expiry"], row["strike"]) == (dt.date(2023, 6, 16), 150.0)
    assert (row["bid"], row["ask"], row["last"]) == (28.9, 29.25, 29.25)
    assert (row["volume"], row["open_interest"]) == (8.0, 8133.0)
    assert row["underlying_price"] == raw["underlying_asset"]["price"]
    assert row["vendor_iv"] == raw["implied_volatility"]
    assert row["vendor_delta"] == raw["greeks"]["delta"] and row["vendor_rho"] is None
    ns = chain["quote_ts"].cast(pl.Int64)[0]
    assert ns == raw["last_quote"]["last_updated"] == 1651254260800059648


def test_single_contract_snapshot(recorded: RecordedFake) -> None:
    body = load("v3__snapshot__options__AAPL__O_C_AAPL230616C00150000.json")
    client = RESTClient(POLYGON_KEY, base=recorded.url, retries=0)
    snap = client.get_snapshot_option("AAPL", "O:AAPL230616C00150000")
    assert snap.break_even_price == body["results"]["break_even_price"]
    assert snap.open_interest == body["results"]["open_interest"]
    frame = parse.polygon_option_snapshots([body["results"]], "AAPL", dt.date(2022, 4, 29))
    assert frame["vendor_gamma"][0] == body["results"]["greeks"]["gamma"]
