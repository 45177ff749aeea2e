"""Parsing at the edge: DST-correct sessions, nanoseconds kept, malformed input refused, and
expected versus unexpected empty answers."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.sources.vendors import parse
from alpaca_improved_pipelines.sources.vendors.errors import PermanentVendorError
from tests.fakes.fixtures import FakeClock

# Fridays and Mondays either side of the 2024 DST switches (Mar 10 and Nov 3).
DST_EDGES = {
    dt.date(2024, 3, 8): 5,
    dt.date(2024, 3, 11): 4,
    dt.date(2024, 11, 1): 4,
    dt.date(2024, 11, 4): 5,
}


def test_vendor_fixture_stamps_land_on_their_sessions() -> None:
    alpaca = parse.alpaca_bars(
        {
            "TSLA": [
                {
                    "t": "2023-09-27T04:00:00Z",
                    "o": 1,
                    "h": 1,
                    "l": 1,
                    "c": 1,
                    "v": 1,
                    "n": 1,
                    "vw": 1,
                }
            ]
        }
    )
    assert alpaca["session"][0] == dt.date(2023, 9, 27)
    alp = parse.alpaca_bars(
        {
            "AAPL": [
                {
                    "t": "2022-02-01T05:00:00Z",
                    "o": 174,
                    "h": 174.84,
                    "l": 172.31,
                    "c": 174.61,
                    "v": 85998033,
                    "n": 732412,
                    "vw": 173.703516,
                }
            ]
        }
    )
    assert alp["session"][0] == dt.date(2022, 2, 1) and alp["open"][0] == 174.0
    poly = parse.polygon_aggs(
        "AAPL",
        [
            {"t": 1112331600000, "o": 1, "h": 1, "l": 1, "c": 1, "v": 1.0},
            {"t": 1112587200000, "o": 1, "h": 1, "l": 1, "c": 1, "v": 1.0},
        ],
    )
    assert poly["session"].to_list() == [dt.date(2005, 4, 1), dt.date(2005, 4, 4)]


@pytest.mark.parametrize("session", sorted(DST_EDGES))
def test_daily_bars_across_dst_through_both_fakes(
    alpaca_source, polygon_source, session: dt.date
) -> None:
    for src in (alpaca_source, polygon_source):
        bars = src.stock_bars(("SPY",), session, "1Day")
        assert bars["session"].to_list() == [session]
        ts = bars["ts"][0]
        assert ts == cal.midnight_new_york(session)
        assert ts.hour == DST_EDGES[session]  # 04:00Z in EDT, 05:00Z in EST
        minutes = src.stock_bars(("SPY",), session, "1Min")
        opn, _ = cal.session_open_close(session)
        assert minutes["ts"].min() == opn.to_pydatetime()  # 09:30 New York either side
        assert minutes.height == 390


def test_nanoseconds_survive_where_fromisoformat_truncates() -> None:
    stamp = "2024-04-25T20:00:00.259610112Z"
    chain = parse.alpaca_option_snapshots(
        {"AAPL240503P00155000": {"latestQuote": {"ap": 0.35, "bp": 0.32, "t": stamp}}},
        "AAPL",
        dt.date(2024, 4, 25),
    )
    assert chain["quote_ts"].cast(pl.Int64)[0] == 1714075200259610112
    truncated = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert truncated.microsecond == 259610  # the last three digits are gone there
    row = chain.row(0, named=True)
    assert (row["expiry"], row["right"], row["strike"]) == (dt.date(2024, 5, 3), "P", 155.0)
    assert row["vendor_iv"] is None and row["vendor_delta"] is None  # optional on the wire


@pytest.mark.parametrize(
    "bars",
    [
        {"SPY": [{"t": "2024-03-15T13:30:00Z", "o": "abc", "h": 1, "l": 1, "c": 1, "v": 1}]},
        {"SPY": [{"t": "2024-03-15T13:30:00Z", "h": 1, "l": 1, "c": 1, "v": 1}]},
        {"SPY": [{"t": "yesterday", "o": 1, "h": 1, "l": 1, "c": 1, "v": 1}]},
        ["not", "an", "object"],
    ],
)
def test_malformed_bars_are_refused(bars: object) -> None:
    with pytest.raises(PermanentVendorError, match="malformed"):
        parse.alpaca_bars(bars)  # type: ignore[arg-type]


def test_conflicting_duplicates_are_refused_identical_ones_dropped() -> None:
    bar = {"t": "2024-03-15T13:30:00Z", "o": 1, "h": 2, "l": 1, "c": 2, "v": 10}
    frame, dropped = parse.dedupe_bars(parse.alpaca_bars({"SPY": [bar, dict(bar)]}), "x")
    assert frame.height == 1 and dropped == 1
    with pytest.raises(PermanentVendorError, match="two different bars"):
        parse.dedupe_bars(parse.alpaca_bars({"SPY": [bar, {**bar, "c": 3}]}), "x")


def test_malformed_option_symbols_are_refused() -> None:
    with pytest.raises(PermanentVendorError, match="not OCC"):
        parse.polygon_option_snapshots(
            [{"details": {"ticker": "O:NOTANOPTION"}}], "SPY", dt.date(2024, 3, 15)
        )


def test_holiday_is_an_expected_empty_and_recorded(alpaca_source, polygon_source) -> None:
    good_friday = dt.date(2024, 3, 29)
    for src in (alpaca_source, polygon_source):
        assert src.stock_bars(("SPY",), good_friday, "1Day").height == 0
        assert "not an NYSE trading session" in str(src.expected_empties[-1])


def test_before_vendor_history_is_expected(alpaca_source, alpaca_market) -> None:
    alpaca_market.market.stock_history_start = dt.date(2016, 1, 4)
    assert alpaca_source.stock_bars(("SPY",), dt.date(2015, 6, 1), "1Day").height == 0
    assert "history, which starts 2016-01-04" in str(alpaca_source.expected_empties[-1])
    assert alpaca_source.option_chain("SPY", dt.date(2024, 1, 10)).height == 0
    assert "option_chain" in str(alpaca_source.expected_empties[-1])


def test_unknown_symbol_is_an_error_naming_it(alpaca_source, polygon_source) -> None:
    for src in (alpaca_source, polygon_source):
        with pytest.raises(PermanentVendorError, match=r"\['ZZZZ'\]"):
            src.stock_bars(("SPY", "ZZZZ"), dt.date(2024, 3, 15), "1Day")


def test_polygon_missing_results_is_not_no_data(polygon_source, polygon_fake) -> None:
    polygon_fake.queue_faults("/v2/aggs", ["empty_object"])
    with pytest.raises(PermanentVendorError, match="no 'results'"):
        polygon_source.stock_bars(("SPY",), dt.date(2024, 3, 15), "1Day")


def test_snapshot_of_another_session_is_refused(alpaca_source, polygon_source) -> None:
    for src in (alpaca_source, polygon_source):
        with pytest.raises(PermanentVendorError, match="snapshots are live"):
            src.option_chain("SPY", dt.date(2024, 3, 14))


@pytest.mark.parametrize("vendor,prefix", [("alpaca", "/v2/stocks/bars"), ("polygon", "/v2/aggs")])
def test_free_plan_recent_window(
    request: pytest.FixtureRequest, vendor: str, prefix: str, fake_clock: FakeClock
) -> None:
    src = request.getfixturevalue(f"{vendor}_source")
    fake = request.getfixturevalue("alpaca_market" if vendor == "alpaca" else "polygon_fake")
    session = dt.date(2024, 3, 15)
    close = cal.session_open_close(session)[1].timestamp()
    fake.set_fault(prefix, "403_plan")
    fake_clock.now = close + 300  # five minutes after the close: expected, recorded
    assert src.stock_bars(("SPY",), session, "1Min").height == 0
    assert "most recent window" in str(src.expected_empties[-1])
    fake_clock.now = close + 86_400  # a day later the same answer is a plan problem
    with pytest.raises(PermanentVendorError, match="plan"):
        src.stock_bars(("SPY",), session, "1Min")
