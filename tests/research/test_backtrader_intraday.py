"""Minute strategies on backtrader: ``vwap_reversion`` over the lake's 1-minute feeds decides
at exactly the minutes, symbols and sides that the stepped minute-by-minute ``decide()`` loop
(``tests.intraday_steps``, the live runner's minute snapshots) does, and fills at the minute's
close (two sessions, one of them the 13:00 early close)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from alpaca_improved_pipelines.lake import storage
from contracts.lake_columns import BAR_SCHEMA
from research.backtrader_adapter import AdapterError, Costs, run_decide
from research.backtrader_feed import lake_feeds
from strategies.equity import VWAPReversion, VWAPReversionConfig
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
