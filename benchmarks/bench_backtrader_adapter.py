"""backtrader adapter benchmark (prints, asserts nothing).

Run: ``.venv/bin/python benchmarks/bench_backtrader_adapter.py [--years Y]``.

Writes a synthetic lake of ``Y`` years of daily bars for one symbol to a temp directory, then
times on those same bars, in bars/s (one decision per bar):

- ``DecideStrategy`` (our ``MACrossover.decide()`` on backtrader's broker) with the whole
  history in each snapshot (``lookback=None``, what the parity test runs) and with the live
  runner's 260-session window;
- the stepped ``decide()`` loop our tests and the options engine use: the snapshot a zero-copy
  slice of the history frame, the book carried from its own fills at the close;
- a native backtrader SMA crossover (``bt.indicators.CrossOver``) on the same feed: backtrader's
  own per-bar cost, the floor any adapter pays.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import backtrader as bt  # noqa: E402
import polars as pl  # noqa: E402

from alpaca_improved_pipelines import calendar as cal  # noqa: E402
from alpaca_improved_pipelines.lake import storage  # noqa: E402
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars  # noqa: E402
from research.backtrader_adapter import Costs, configure_broker, decide_strategy_class  # noqa: E402
from research.backtrader_feed import lake_feeds, read_bars  # noqa: E402
from strategies.equity import MACrossover, MACrossoverConfig  # noqa: E402
from strategies.models import NEW_YORK, Book, MarketSnapshot, Position, Side  # noqa: E402

COSTS = Costs(fees=0.001, slippage=0.0005)
STRATEGY = MACrossover(MACrossoverConfig(symbols=("SPY",), fast=10, slow=50))


class NativeCross(bt.Strategy):
    """The same crossover written the backtrader way."""

    def __init__(self) -> None:
        fast, slow = bt.ind.SMA(period=10), bt.ind.SMA(period=50)
        self.cross = bt.ind.CrossOver(fast, slow)

    def next(self) -> None:
        if not self.position and self.cross[0] > 0:
            self.buy(size=int(self.broker.getcash() // self.data.close[0]))
        elif self.position and self.cross[0] < 0:
            self.close()


def cerebro_run(home: Path, strategy: type, **kw: object) -> float:
    cerebro = bt.Cerebro(stdstats=False)
    for feed in lake_feeds(home, ["SPY"], "1d"):
        cerebro.adddata(feed)
    configure_broker(cerebro, 100_000.0, COSTS)
    cerebro.addstrategy(strategy, **kw)
    start = time.perf_counter()
    cerebro.run()
    return time.perf_counter() - start


def stepped(home: Path) -> float:
    bars = pl.from_pandas(read_bars(home, ["SPY"], "1d")["SPY"].reset_index())
    bars = bars.select(
        pl.col("datetime").dt.date().alias("session"),
        pl.lit("SPY").alias("symbol"),
        pl.exclude("datetime"),
    )
    start = time.perf_counter()
    cash, held = 100_000.0, 0.0
    for t in range(bars.height):
        seen = bars.slice(0, t + 1)
        session, close = seen["session"][t], float(seen["close"][t])
        snap = MarketSnapshot(
            dt.datetime.combine(session, dt.time(16), NEW_YORK), session, {"SPY": close}, seen
        )
        book = Book.build(cash, (Position("SPY", held, close, close),) if held else ())
        for intent in STRATEGY.decide(snap, book):
            buy = intent.legs[0].side is Side.BUY
            price = close * (1 + COSTS.slippage if buy else 1 - COSTS.slippage)
            cash -= (1 if buy else -1) * intent.qty * price + intent.qty * price * COSTS.fees
            held = held + intent.qty if buy else 0.0
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--years", type=int, default=10)
    args = parser.parse_args()
    sessions = cal.sessions_between(dt.date(2024 - args.years, 1, 2), dt.date(2023, 12, 29))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for s in sessions:
            frame = daily_bars(7, ("SPY",), s)
            storage.write_partition(frame, home / "lake", "stock_bars_1d", s, fsync=False)
        n = len(sessions)
        t0 = time.perf_counter()
        lake_feeds(home, ["SPY"], "1d")
        print(f"{n} daily bars, 1 symbol; feed from the lake {time.perf_counter() - t0:.3f} s")
        decide = decide_strategy_class()
        cerebro_run(home, decide, decider=STRATEGY)  # warm-up: numba compiles the kernels once
        for label, seconds in (
            ("DecideStrategy, whole history", cerebro_run(home, decide, decider=STRATEGY)),
            (
                "DecideStrategy, lookback=260",
                cerebro_run(home, decide, decider=STRATEGY, lookback=260),
            ),
            ("stepped decide() loop", stepped(home)),
            ("native backtrader crossover", cerebro_run(home, NativeCross)),
        ):
            print(f"  {label:32s} {seconds:7.3f} s  {n / seconds:9,.0f} bars/s")


if __name__ == "__main__":
    main()
