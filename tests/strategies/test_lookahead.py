"""No look-ahead: decisions up to session t never change when data after t changes."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from strategies.backtest.options_engine import run_options_backtest
from strategies.backtest.synthetic import synthetic_chains
from strategies.base import Strategy
from strategies.equity import (
    MACrossover,
    MACrossoverConfig,
    Momentum,
    MomentumConfig,
    RSIReversion,
    RSIReversionConfig,
)
from strategies.models import NEW_YORK, Book, MarketSnapshot, OrderIntent, Position, Side
from strategies.options import (
    MomentumOptions,
    MomentumOptionsConfig,
    MomentumSpreads,
    MomentumSpreadsConfig,
    Wheel,
    WheelConfig,
)

CUT = 40  # index of the last session whose decisions must stay fixed


class Recording(Strategy):
    """Wraps a strategy and records what each decision saw and returned."""

    name = "recording"

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.log: list[tuple] = []
        super().__init__(inner.config)

    @property
    def config_cls(self):  # type: ignore[override]
        return type(self.inner.config)

    @classmethod
    def param_space(cls):  # pragma: no cover - not used
        raise NotImplementedError

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        intents = self.inner.decide(snapshot, book)
        hist_last = snapshot.history.get_column("session").max()
        chain_sessions = {s for c in snapshot.chains.values() for s in c["session"].unique()}
        closes = tuple(snapshot.history.get_column("close").to_list())
        self.log.append(
            (snapshot.session, hist_last, chain_sessions, closes, book.equity, tuple(intents))
        )
        return intents


def perturb_after(chains: pl.DataFrame, cut: date) -> pl.DataFrame:
    later = pl.col("session") > cut
    scaled = [
        pl.when(later).then(pl.col(c) * 1.7).otherwise(pl.col(c)).alias(c)
        for c in ("bid", "ask", "mid", "underlying_price")
    ]
    return chains.with_columns(
        *scaled, pl.when(later).then(0.9).otherwise(pl.col("iv")).alias("iv")
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: Wheel(WheelConfig("SPY", put_delta=0.4, dte=21, dte_min=7, profit_target=0.3)),
        lambda: MomentumOptions(
            MomentumOptionsConfig("SPY", lookback=5, threshold=0.01, exit_dte=None, stop_loss=None)
        ),
        lambda: MomentumSpreads(
            MomentumSpreadsConfig("SPY", lookback=5, threshold=0.01, trend=10, dte=21, dte_min=7)
        ),
    ],
    ids=["wheel", "momentum_options", "momentum_spreads"],
)
def test_engine_decisions_ignore_the_future(make) -> None:
    spots = 100 * np.exp(np.cumsum(np.r_[0.0, np.tile([0.012, 0.008, -0.004, 0.01], 20)[:79]]))
    chains = synthetic_chains("SPY", date(2022, 1, 3), 80, spots=spots)
    sessions = sorted(chains.get_column("session").unique().to_list())
    base, changed = Recording(make()), Recording(make())
    run_options_backtest(base, chains)
    run_options_backtest(changed, perturb_after(chains, sessions[CUT]))
    assert len(base.log) == len(changed.log) == 80
    for session, hist_last, chain_sessions, *_ in base.log:
        assert hist_last == session and chain_sessions == {session}
    assert base.log[: CUT + 1] == changed.log[: CUT + 1]
    assert base.log[CUT + 1][3] != changed.log[CUT + 1][3]  # the perturbation is visible after t
    assert any(entry[5] for entry in base.log[: CUT + 1])  # and decisions were actually made


EQUITY = [
    MACrossover(MACrossoverConfig(("X",), fast=3, slow=12)),
    RSIReversion(RSIReversionConfig(("X",), window=6, lower=40, upper=60)),
    Momentum(MomentumConfig(("X",), lookback=5, enter=0.0, leave=-0.01, trend=10)),
]


@pytest.mark.parametrize("strategy", EQUITY, ids=lambda s: s.name)
def test_signals_are_causal(strategy) -> None:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(4).normal(0, 0.02, 300)))
    entries, exits = strategy.signals(close)
    assert entries.any() and exits.any()
    for t in (20, 77, 150, 299):
        future = close.copy()
        future[t + 1 :] *= np.linspace(0.5, 2.0, future.size - t - 1)
        e2, x2 = strategy.signals(future)
        np.testing.assert_array_equal(e2[: t + 1], entries[: t + 1])
        np.testing.assert_array_equal(x2[: t + 1], exits[: t + 1])
        e3, x3 = strategy.signals(close[: t + 1])
        np.testing.assert_array_equal(e3, entries[: t + 1])
        np.testing.assert_array_equal(x3, exits[: t + 1])


@pytest.mark.parametrize("strategy", EQUITY, ids=lambda s: s.name)
def test_live_decide_matches_vectorized_row(strategy) -> None:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(5).normal(0, 0.02, 160)))
    entries, exits = strategy.signals(close)
    start = date(2023, 1, 2)
    sessions = [start + timedelta(days=k) for k in range(close.size)]
    bars = pl.DataFrame(
        {
            "session": sessions,
            "symbol": "X",
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": 1.0,
        }
    )
    flat = Book.build(10_000.0)
    held = Book.build(0.0, (Position("X", 10, 100.0, float(close[-1])),))
    for t in range(close.size):
        snap = MarketSnapshot(
            datetime.combine(sessions[t], datetime.min.time(), NEW_YORK),
            sessions[t],
            {"X": float(close[t])},
            bars.head(t + 1),
        )
        buys = strategy.decide(snap, flat)
        sells = strategy.decide(snap, held)
        assert bool(buys) == bool(entries[t] and not exits[t]), t
        assert bool(sells) == bool(exits[t] and not entries[t]), t
        assert all(i.legs[0].side is Side.BUY for i in buys)
        assert all(i.legs[0].side is Side.SELL and i.qty == 10 for i in sells)
