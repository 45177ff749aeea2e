"""Pages/s and rows/s through the real vendor clients against the local fakes (prints only).

Run: ``.venv/bin/python benchmarks/bench_sources.py [--sessions N] [--repeat N]``.

"client" is the vendor client on its own (alpaca-py ``get_stock_bars`` into a ``BarSet``;
polygon-api-client ``list_aggs`` into ``Agg`` objects); "ours" is the source the assets use
(budget, retry policy, page walker, strict parse into the lake layout, session filter). Both
fetch the same 1-minute bars per session from the same fake, with the same page size, so the
ratio is the cost (or gain) of our layer. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alpaca.data.historical.stock import StockHistoricalDataClient  # noqa: E402
from alpaca.data.requests import StockBarsRequest  # noqa: E402
from alpaca.data.timeframe import TimeFrame  # noqa: E402
from polygon import RESTClient  # noqa: E402

from alpaca_improved_pipelines import calendar as cal  # noqa: E402
from alpaca_improved_pipelines.sources.vendors.alpaca import AlpacaSource, session_window  # noqa: E402
from alpaca_improved_pipelines.sources.vendors.polygon import PolygonSource  # noqa: E402
from tests.fakes.alpaca_market import AlpacaMarketFake  # noqa: E402
from tests.fakes.base import FakeServer  # noqa: E402
from tests.fakes.market import FakeMarket  # noqa: E402
from tests.fakes.polygon import PolygonFake  # noqa: E402

KEY, SECRET, PKEY = "bench-key", "bench-secret", "bench-polygon"
SYMBOLS = ("SPY", "QQQ", "IWM", "AAPL", "MSFT", "NVDA", "AMZN", "JPM", "XOM", "TSLA")
POLYGON_PAGE = 200


def measure(fake: FakeServer, prefix: str, fn: Callable[[], int], repeat: int) -> tuple:
    """Best-of-``repeat`` (seconds, pages, rows) for ``fn`` returning its row count."""
    best = None
    for _ in range(repeat):
        before = len(fake.hits(prefix))
        start = time.perf_counter()
        rows = fn()
        took = time.perf_counter() - start
        pages = len(fake.hits(prefix)) - before
        if best is None or took < best[0]:
            best = (took, pages, rows)
    assert best is not None
    return best


def row(vendor: str, mode: str, result: tuple, base: tuple | None) -> str:
    took, pages, rows = result
    ratio = "" if base is None else f"{(rows / took) / (base[2] / base[0]):6.2f}x"
    return (
        f"{vendor:8} {mode:7} {pages:6d} {rows:8d} {took:8.3f} {pages / took:9.1f} "
        f"{rows / took:11.0f} {ratio}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.update({"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET, "POLYGON_API_KEY": PKEY})
    market = FakeMarket()
    sessions = cal.sessions_between(cal.CALENDAR_START, market.as_of)[-args.sessions :]
    for s in sessions:  # build the synthetic data once, outside the timings
        for sym in SYMBOLS:
            market.minute_bars(sym, s)
    print(
        f"{len(SYMBOLS)} symbols x {len(sessions)} sessions of 1-minute bars, best of {args.repeat}"
    )
    print(
        f"{'vendor':8} {'mode':7} {'pages':>6} {'rows':>8} {'seconds':>8} {'pages/s':>9} "
        f"{'rows/s':>11} ours/client"
    )
    with AlpacaMarketFake(market, key=KEY, secret=SECRET) as fake:
        client = StockHistoricalDataClient(KEY, SECRET, url_override=fake.url)
        ours = AlpacaSource(data_url=fake.url, requests_per_minute=None)

        def alpaca_client() -> int:
            total = 0
            for s in sessions:
                start, end = session_window(s)
                bars = client.get_stock_bars(
                    StockBarsRequest(
                        symbol_or_symbols=list(SYMBOLS),
                        timeframe=TimeFrame.Minute,
                        start=start,
                        end=end,
                        limit=100_000,
                        feed="sip",
                    )
                )
                total += sum(len(v) for v in bars.data.values())
            return total

        def alpaca_ours() -> int:
            return sum(ours.stock_bars(SYMBOLS, s, "1Min").height for s in sessions)

        base = measure(fake, "/v2/stocks/bars", alpaca_client, args.repeat)
        print(row("alpaca", "client", base, None))
        print(
            row("alpaca", "ours", measure(fake, "/v2/stocks/bars", alpaca_ours, args.repeat), base)
        )
    with PolygonFake(market, key=PKEY) as fake:
        pclient = RESTClient(PKEY, base=fake.url, retries=0)
        pours = PolygonSource(base_url=fake.url, page_limit=POLYGON_PAGE)

        def polygon_client() -> int:
            return sum(
                len(
                    list(
                        pclient.list_aggs(
                            sym, 1, "minute", s.isoformat(), s.isoformat(), limit=POLYGON_PAGE
                        )
                    )
                )
                for s in sessions
                for sym in SYMBOLS
            )

        def polygon_ours() -> int:
            return sum(pours.stock_bars(SYMBOLS, s, "1Min").height for s in sessions)

        base = measure(fake, "/v2/aggs", polygon_client, args.repeat)
        print(row("polygon", "client", base, None))
        print(row("polygon", "ours", measure(fake, "/v2/aggs", polygon_ours, args.repeat), base))
    print(
        "client rows include pre/post-market minutes; ours keeps regular hours only "
        "(rows/s ratios compare delivered rows)."
    )


if __name__ == "__main__":
    main()
