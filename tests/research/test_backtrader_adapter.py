"""The backtrader adapter's snapshot, book and order mapping: ``decide()`` sees on backtrader
exactly what the live runner's lake snapshot provider gives it, both history builders agree,
limit orders follow backtrader's rules, and what cannot be mapped fails with one clear line."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, ClassVar

import backtrader as bt
import polars as pl
import pytest

from live.market.snapshot import LakeSnapshotProvider
from research.backtrader_adapter import (
    AdapterError,
    Costs,
    configure_broker,
    decide_strategy_class,
    decision_time,
)
from research.backtrader_feed import lake_feeds
from strategies.base import Param, ParamSpace, Strategy
from strategies.models import (
    AssetClass,
    Book,
    Leg,
    MarketSnapshot,
    OrderIntent,
    OrderType,
    PositionIntent,
    Side,
)

from .backtrader_lake import SESSIONS, SYMBOLS, build_lake


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lake(tmp_path_factory.mktemp("bt_adapter"))


@dataclasses.dataclass(frozen=True)
class _Config:
    orders: tuple = ()  # (session, intent) pairs to place


class _Spy(Strategy):
    """Records every snapshot and book it is shown; places the orders its config names."""

    name = "spy_recorder"
    config_cls = _Config
    seen: ClassVar[list[tuple[MarketSnapshot, Book]]] = []

    @classmethod
    def param_space(cls) -> ParamSpace:
        return ParamSpace((Param("orders", values=((),)),), _Config)

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        type(self).seen.append((snapshot, book))
        return [i for s, i in self.config.orders if s == snapshot.session]


def _run(home: Path, symbols: list[str], timeframe: str = "1d", **params: Any):
    _Spy.seen = []
    cerebro = bt.Cerebro(stdstats=False)
    for feed in lake_feeds(home, symbols, timeframe):
        cerebro.adddata(feed)
    configure_broker(cerebro, 100_000.0, Costs(fees=0.001))
    params.setdefault("decider", _Spy())
    cerebro.addstrategy(decide_strategy_class(), **params)
    return cerebro.run()[0], list(_Spy.seen)


@pytest.mark.parametrize("preload", [True, False])
def test_snapshots_are_the_live_runners(home: Path, preload: bool) -> None:
    """With a 100-session window (the year lake is shorter than the live default of 260),
    every snapshot equals the one ``LakeSnapshotProvider`` (the live runner's) gives at the same
    decision time: ts, session, prices and history frame, on both history builders."""
    _, seen = _run(home, list(SYMBOLS), lookback=100, preload=preload)
    assert [s.session for s, _ in seen] == SESSIONS
    live = LakeSnapshotProvider(home, lookback=100)
    for snapshot, _ in seen[::25] + seen[-1:]:
        want = live.latest(decision_time(snapshot.session))
        assert want is not None and snapshot.ts == want.ts == decision_time(snapshot.session)
        assert snapshot.session == want.session and dict(snapshot.prices) == dict(want.prices)
        assert snapshot.history.equals(want.history.select(snapshot.history.columns))
    assert seen[-1][0].history.height == 100 * len(SYMBOLS)
    _, everything = _run(home, list(SYMBOLS), preload=preload)  # lookback=None: all of it
    assert everything[-1][0].history.height == len(SESSIONS) * len(SYMBOLS)


def _buy(symbol: str, qty: int, limit: float | None = None) -> OrderIntent:
    leg = Leg(symbol, Side.BUY, 1, AssetClass.US_EQUITY)
    kind = OrderType.LIMIT if limit else OrderType.MARKET
    return OrderIntent("spy_recorder", (leg,), qty, order_type=kind, limit_price=limit)


def test_book_limits_and_market_orders(home: Path) -> None:
    """A market buy fills at the decision close with the fee; the next book holds it at that
    price and marks it at the next close. A day limit below the next bar's low expires; one
    above its low fills at the limit or the better open (backtrader's rule, no cheat-on-close)."""
    s = SESSIONS
    lake = pl.read_parquet(home / "lake" / "stock_bars_1d" / "*" / "part.parquet")
    bar = {(r["session"], r["symbol"]): r for r in lake.iter_rows(named=True)}
    low = bar[(s[3], "SPY")]["low"]
    orders = (
        (s[0], _buy("SPY", 10)),
        (s[2], _buy("SPY", 5, limit=round(low * 0.9, 2))),  # never reached on s[3]
        (s[2], _buy("XOM", 7, limit=round(bar[(s[3], "XOM")]["high"], 2))),
    )
    run, seen = _run(home, ["SPY", "XOM"], decider=_Spy(_Config(orders)))
    close0 = bar[(s[0], "SPY")]["close"]
    first = run.fills[0]
    assert (first["session"], first["symbol"], first["size"]) == (s[0], "SPY", 10)
    assert first["price"] == pytest.approx(close0, rel=1e-12)
    assert first["fees"] == pytest.approx(10 * close0 * 0.001, rel=1e-12)
    book = seen[1][1]
    (pos,) = book.positions
    assert (pos.symbol, pos.qty, pos.avg_price) == ("SPY", 10, pytest.approx(close0))
    assert pos.mark == bar[(s[1], "SPY")]["close"]
    assert book.cash == pytest.approx(100_000 - 10 * close0 * 1.001, rel=1e-12)
    assert [(r["symbol"], r["status"]) for r in run.rejected] == [("SPY", "Expired")]
    xom = run.fills[1]
    limit = round(bar[(s[3], "XOM")]["high"], 2)
    assert (xom["symbol"], xom["fill_session"], xom["size"]) == ("XOM", s[3], 7)
    assert xom["price"] == pytest.approx(min(limit, bar[(s[3], "XOM")]["open"]), rel=1e-12)


def test_what_cannot_be_mapped_fails_clearly(home: Path) -> None:
    option = Leg(
        "SPY240621C00500000", Side.BUY, 1, AssetClass.US_OPTION, PositionIntent.BUY_TO_OPEN
    )
    intent = OrderIntent("spy_recorder", (option,), 1, OrderType.LIMIT, limit_price=1.0)
    with pytest.raises(AdapterError, match="single-leg equity orders only"):
        _run(home, ["SPY"], decider=_Spy(_Config(((SESSIONS[0], intent),))))
    with pytest.raises(AdapterError, match=r"feeds \['SPY'\] do not hold stock_bars_1d bars"):
        _run(home, ["SPY"], "1h")
    with pytest.raises(AdapterError, match="needs decider=<a strategies.base.Strategy"):
        _run(home, ["SPY"], decider="ma_crossover")


def test_missing_backtrader_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import research.backtrader_adapter as adapter

    monkeypatch.setattr(adapter, "_CLASS", None)
    monkeypatch.setitem(sys.modules, "backtrader", None)  # what an install without it sees
    with pytest.raises(ImportError, match=r"pip install 'alpaca-improved\[backtrader\]'"):
        adapter.DecideStrategy  # noqa: B018
