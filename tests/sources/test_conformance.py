"""Every fake endpoint through the real vendor client, decoded by the client's own models.

alpaca-py's pydantic models and polygon-api-client's dataclasses are the schema oracle: if the
fakes drifted from the wire format, decoding here would fail or lose fields.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import (
    OptionBarsRequest,
    OptionChainRequest,
    OptionSnapshotRequest,
    StockBarsRequest,
)
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import GetOptionContractsRequest
from polygon import RESTClient

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.sources import synthetic_bars
from alpaca_improved_pipelines.sources.vendors import parse
from tests.fakes.alpaca_market import wire_bar
from tests.fakes.fixtures import ALPACA_KEY, ALPACA_SECRET, POLYGON_KEY
from tests.fakes.market import FakeMarket

SESSION = dt.date(2024, 3, 15)
START = cal.midnight_new_york(SESSION)
END = cal.midnight_new_york(SESSION + dt.timedelta(days=1)) - dt.timedelta(seconds=1)


def test_alpaca_stock_bars_decode_in_alpaca_py(alpaca_market, fake_market: FakeMarket) -> None:
    client = StockHistoricalDataClient(ALPACA_KEY, ALPACA_SECRET, url_override=alpaca_market.url)
    req = StockBarsRequest(
        symbol_or_symbols=["SPY", "AAPL"],
        timeframe=TimeFrame.Minute,
        start=START,
        end=END,
        limit=10_000,
        feed="sip",
    )
    barset = client.get_stock_bars(req)
    expected = fake_market.minute_bars("SPY", SESSION)
    got = barset.data["SPY"]
    assert len(got) == len(expected) and len(barset.data["AAPL"]) > 300
    assert got[0].timestamp.timestamp() * 1e9 == expected[0].ts_ns  # pre-market bar included
    assert (got[5].open, got[5].close, got[5].volume) == (
        expected[5].o,
        expected[5].c,
        expected[5].v,
    )
    daily = client.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="TSLA", timeframe=TimeFrame.Day, start=START, end=END, limit=5
        )
    )
    bar = daily.data["TSLA"][0]
    assert bar.timestamp == cal.midnight_new_york(SESSION)  # 04:00Z in EDT
    assert bar.close == synthetic_bars.daily_bars(7, ("TSLA",), SESSION)["close"][0]
    frame = parse.alpaca_barset(barset)  # the model path (microseconds) agrees at whole seconds
    raw = parse.alpaca_bars(
        {s: [wire_bar(b) for b in fake_market.minute_bars(s, SESSION)] for s in ("AAPL", "SPY")}
    )
    assert frame.equals(raw)
    query = alpaca_market.hits("/v2/stocks/bars")[0].query
    assert query["limit"] == ["10000"] and query["symbols"] == ["SPY,AAPL"]


def test_alpaca_option_endpoints_decode(alpaca_market, fake_market: FakeMarket) -> None:
    client = OptionHistoricalDataClient(ALPACA_KEY, ALPACA_SECRET, url_override=alpaca_market.url)
    chain = client.get_option_chain(OptionChainRequest(underlying_symbol="SPY"))
    quotes = {q.occ: q for q in fake_market.chain("SPY", SESSION)}
    assert set(chain) == set(quotes) and len(quotes) > 100
    with_greeks = [s for s in chain.values() if s.greeks is not None]
    without = [s for s in chain.values() if s.greeks is None]
    assert with_greeks and without, "both optional shapes must be exercised"
    one = with_greeks[0]
    assert one.latest_quote.bid_price == quotes[one.symbol].bid
    assert one.implied_volatility == quotes[one.symbol].iv
    assert any(s.latest_trade is None for s in chain.values())
    picked = sorted(quotes)[:3]
    snaps = client.get_option_snapshot(OptionSnapshotRequest(symbol_or_symbols=picked))
    assert sorted(snaps) == picked
    traded = [o for o, q in quotes.items() if q.volume][:5]
    bars = client.get_option_bars(
        OptionBarsRequest(
            symbol_or_symbols=traded, timeframe=TimeFrame.Day, start=START, end=END, limit=100
        )
    )
    assert sorted(bars.data) == sorted(traded)
    assert bars.data[traded[0]][0].volume == quotes[traded[0]].volume


def test_alpaca_option_contracts_page_by_token(alpaca_trading, fake_market: FakeMarket) -> None:
    client = TradingClient(ALPACA_KEY, ALPACA_SECRET, paper=True, url_override=alpaca_trading.url)
    seen, token = [], None
    for _ in range(20):
        res = client.get_option_contracts(
            GetOptionContractsRequest(underlying_symbols=["SPY"], limit=50, page_token=token)
        )
        seen += res.option_contracts
        token = res.next_page_token
        if not token:
            break
    assert len(seen) == len(fake_market.chain("SPY", SESSION))
    first = seen[0]
    assert isinstance(first.strike_price, float) and first.size == "100"
    assert first.open_interest.isdigit()  # strings on the wire, as the vendor sends
    assert client.get_option_contract(first.symbol).id == first.id


def test_polygon_endpoints_decode_in_client(polygon_fake, fake_market: FakeMarket) -> None:
    client = RESTClient(POLYGON_KEY, base=polygon_fake.url, retries=0)
    aggs = list(client.list_aggs("AAPL", 1, "minute", "2024-03-15", "2024-03-15", limit=100))
    expected = fake_market.minute_bars("AAPL", SESSION)
    assert len(aggs) == len(expected)  # followed next_url across 8 pages
    assert aggs[10].timestamp * 1_000_000 == expected[10].ts_ns and aggs[10].close == expected[10].c
    day = client.get_aggs("AAPL", 1, "day", "2024-03-15", "2024-03-15")
    assert day[0].timestamp == int(cal.midnight_new_york(SESSION).timestamp() * 1000)
    contracts = list(client.list_options_contracts(underlying_ticker="SPY", limit=25))
    assert len(contracts) == len(fake_market.chain("SPY", SESSION))
    assert contracts[0].ticker.startswith("O:SPY") and contracts[0].shares_per_contract == 100
    chain = list(client.list_snapshot_options_chain("SPY", params={"limit": 50}))
    assert len(chain) == len(contracts)
    priced = next(s for s in chain if s.greeks is not None)
    assert priced.implied_volatility is not None and priced.greeks.delta is not None
    assert any(s.greeks is None for s in chain)
    one = client.get_snapshot_option("SPY", priced.details.ticker)
    assert one.last_quote.last_updated == priced.last_quote.last_updated


def test_sources_equal_synthetic_and_keep_nanoseconds(
    alpaca_source, polygon_source, fake_market: FakeMarket
) -> None:
    for timeframe in ("1Min", "1Day"):
        want = (synthetic_bars.minute_bars if timeframe == "1Min" else synthetic_bars.daily_bars)(
            7, ("SPY", "AAPL"), SESSION
        ).drop("source")
        for src in (alpaca_source, polygon_source):
            got = src.stock_bars(("SPY", "AAPL"), SESSION, timeframe)
            assert got.drop("source").equals(want), (src.name, timeframe)
            assert set(got["source"]) == {src.name}
    assert alpaca_source.stats["pages"] >= 2 and polygon_source.stats["pages"] >= 4
    quotes = {q.occ: q.quote_ns for q in fake_market.chain("SPY", SESSION)}
    for src in (alpaca_source, polygon_source):
        chain = src.option_chain("SPY", SESSION)
        ns = dict(zip(chain["contract"], chain["quote_ts"].cast(pl.Int64), strict=True))
        assert ns == quotes  # all nine fractional digits survive
        assert chain["underlying_price"].null_count() == 0
    contracts = alpaca_source.option_contracts("SPY", SESSION)
    assert contracts.height == len(quotes) and contracts["open_interest"].null_count() == 0
    assert polygon_source.option_contracts("SPY", SESSION).height == len(quotes)
