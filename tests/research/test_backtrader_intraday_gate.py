"""An intraday-gated daily strategy under backtrader: with the lake's session features
(``research.timeframes.lake_intraday_features``) handed to the adapter, ``decide()`` on
backtrader's broker places exactly the orders (session, side, quantity) vectorbt trades from the
gated ``signals()`` on the sweep's data; without them every gated entry stays closed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.backtesting.data import GatedCloseMatrix
from alpaca_improved_pipelines.backtesting.families import family
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars, minute_bars
from research.backtrader_adapter import Costs, run_decide
from research.backtrader_feed import lake_feeds
from research.timeframes import lake_intraday_features
from strategies.base import create_strategy
from strategies.equity.intraday_gate import DailyInputs

SYMBOLS = ("SPY", "XOM")
SESSIONS = cal.sessions_between(dt.date(2024, 9, 3), dt.date(2024, 12, 3))
CASH = 50_000.0
PARAMS = {"lookback": 3, "enter": 0.0, "leave": -0.005, "trend": 0, "intraday_gate": "above_vwap"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("bt_gate")
    for s in SESSIONS:
        lake = home / "lake"
        storage.write_partition(daily_bars(7, SYMBOLS, s), lake, "stock_bars_1d", s, fsync=False)
        storage.write_partition(minute_bars(7, SYMBOLS, s), lake, "stock_bars_1m", s, fsync=False)
    return home


def _orders(entries: np.ndarray, exits: np.ndarray, close: np.ndarray) -> list[tuple]:
    """vectorbt's all-cash whole-share orders of one column, no costs."""
    import vectorbt as vbt

    pf = vbt.Portfolio.from_signals(
        close, entries, exits, init_cash=CASH, freq="1D", size=np.inf, size_granularity=1
    )
    rec = pf.orders.records
    return [
        (SESSIONS[i], "buy" if side == 0 else "sell", float(size))
        for i, side, size in zip(rec["idx"], rec["side"], rec["size"], strict=True)
    ]


@pytest.mark.slow  # vectorbt's first compile in the process, then backtrader runs
def test_gated_decide_under_backtrader_trades_as_the_gated_signals(home: Path) -> None:
    features = lake_intraday_features(home, SYMBOLS, SESSIONS[0], SESSIONS[-1])
    data = family("momentum").load(home / "lake")
    assert isinstance(data, GatedCloseMatrix)
    for symbol in SYMBOLS:
        j = data.symbols.index(symbol)
        strategy = create_strategy("momentum", {**PARAMS, "symbols": (symbol,)})
        inputs = DailyInputs(data.close[:, [j]], data.intraday.columns([j]))
        entries, exits = strategy.signals(inputs)  # type: ignore[attr-defined]
        plain = create_strategy("momentum", {**PARAMS, "intraday_gate": "off"})
        ungated, _ = plain.signals(data.close[:, [j]])  # type: ignore[attr-defined]
        assert (ungated & ~entries).any()  # the gate removes entries on this lake
        want = _orders(entries[:, 0], exits[:, 0], data.close[:, j])
        run = run_decide(
            lake_feeds(home, [symbol], "1d"), strategy, CASH, Costs(), intraday_features=features
        )
        got = [(f["session"], f["side"], float(f["size"])) for f in run.fills]
        got += [(p["session"], p["side"], float(p["qty"])) for p in run.pending]
        assert got == want and len(want) >= 2, symbol
        bare = run_decide(lake_feeds(home, [symbol], "1d"), strategy, CASH, Costs())
        assert [d for d in bare.decided if d["side"] == "buy"] == []  # no features: closed
