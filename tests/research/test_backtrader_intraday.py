"""Minute strategies on backtrader: ``vwap_reversion`` over the lake's 1-minute feeds decides
at exactly the minutes, symbols and sides that the stepped minute-by-minute ``decide()`` loop
(``tests.intraday_steps``, the live runner's minute snapshots) does, and fills at the minute's
close (two sessions, one of them the 13:00 early close)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest

from alpaca_improved_pipelines.lake import storage
from contracts.calendar import session_open_close
from contracts.lake_columns import BAR_SCHEMA
from research.backtrader_adapter import AdapterError, Costs, run_decide
from research.backtrader_feed import lake_feeds
from strategies.equity import VWAPReversion, VWAPReversionConfig
from strategies.models import INTRADAY_COLUMNS, Book, MarketSnapshot, OrderIntent
from tests.intraday_steps import step_round_trips

from .backtrader_lake import INTRADAY, SYMBOLS, build_lake

MINUTE = dt.timedelta(minutes=1)
POINTS = [{"warmup": 10}, {"band": 1.5, "exit_band": 0.5, "stop": 4.0, "warmup": 30}]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lake(tmp_path_factory.mktemp("bt_intraday"))


@pytest.mark.parametrize("params", POINTS, ids=["warmup10", "stop"])
def test_minute_decisions_equal_the_stepped_loop(home: Path, params: dict) -> None:
    strategy = VWAPReversion(VWAPReversionConfig(symbols=SYMBOLS, **params))
    run = run_decide(lake_feeds(home, SYMBOLS, "1m"), strategy, 100_000.0, Costs())
    bars = storage.read_partitions(home / "lake", "stock_bars_1m", list(INTRADAY), BAR_SCHEMA)
    _, log = step_round_trips(strategy, bars, list(INTRADAY))
    stepped = [(ts, i.legs[0].symbol, i.legs[0].side.value) for ts, i in log]
    assert len(stepped) >= 4, "too few orders to prove anything"
    assert [(d["ts"], d["symbol"], d["side"]) for d in run.decided] == stepped
    assert run.rejected == [] and run.pending == []  # everything flat before the close
    closes = {
        (r["ts"], r["symbol"]): r["close"]
        for r in bars.select("ts", "symbol", "close").iter_rows(named=True)
    }
    for fill in run.fills:  # at the decision minute's close (bar start = ts - 1 min)
        want = closes[(fill["ts"] - MINUTE, fill["symbol"])]
        assert fill["price"] == pytest.approx(want, rel=1e-12)  # backtrader sums in float


def test_a_minute_strategy_needs_minute_feeds(home: Path) -> None:
    strategy = VWAPReversion(VWAPReversionConfig(symbols=("SPY",)))
    with pytest.raises(AdapterError, match=r"do not hold stock_bars_1m bars.*'1m'"):
        run_decide(lake_feeds(home, ["SPY"], "5m"), strategy, 100_000.0)


class _MinuteSpy(VWAPReversion):
    """vwap_reversion that also records every snapshot it is shown."""

    seen: ClassVar[list[MarketSnapshot]] = []

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        type(self).seen.append(snapshot)
        return super().decide(snapshot, book)


def test_minute_snapshots_hold_the_closed_minutes_and_the_daily_history(home: Path) -> None:
    daily = pl.read_parquet(home / "lake" / "stock_bars_1d" / "*" / "part.parquet")
    daily = daily.select("session", "symbol", "open", "high", "low", "close", "volume")
    _MinuteSpy.seen = []
    spy = _MinuteSpy(VWAPReversionConfig(symbols=SYMBOLS))
    bt_run = run_decide(lake_feeds(home, SYMBOLS, "1m"), spy, 100_000.0, daily=daily)
    seen = _MinuteSpy.seen
    assert len(seen) == 390 + 210 and bt_run.rejected == []
    minutes = storage.read_partitions(home / "lake", "stock_bars_1m", list(INTRADAY), BAR_SCHEMA)
    for snap in seen[::37] + seen[-1:]:
        opn, cls = session_open_close(snap.session)
        assert snap.features == {"session_open": opn, "session_close": cls}
        want = minutes.filter((pl.col("ts") < snap.ts) & (pl.col("ts") >= opn))
        want = want.select(INTRADAY_COLUMNS).sort("ts", "symbol")
        assert snap.intraday is not None and snap.intraday.equals(want)
        before = daily.filter(pl.col("session") < snap.session).sort("session", "symbol")
        assert snap.history.equals(before)
        last = want.filter(pl.col("ts") == snap.ts - MINUTE)
        assert dict(snap.prices) == dict(last.select("symbol", "close").iter_rows())
