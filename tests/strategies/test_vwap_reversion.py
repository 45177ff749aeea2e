"""VWAP reversion on minute bars: what ``decide()`` does on a bar's close, that it is flat before
the session's real close (half days too), and that later minutes never change an earlier signal
or decision."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.calendar import session_open_close
from strategies.base import create_strategy, get_strategy_class
from strategies.equity import VWAPReversion, VWAPReversionConfig
from strategies.equity.intraday import SESSION_CLOSE, SESSION_OPEN, MinutePanel
from strategies.models import Book, MarketSnapshot, Position, Side
from tests.intraday_steps import CASH, NO_HISTORY, snapshot_at, step_round_trips

HALF_DAY = dt.date(2024, 11, 29)  # closes 13:00 New York: 210 minutes
FULL_DAY = dt.date(2024, 12, 2)
CONFIG = VWAPReversionConfig(symbols=("SPY",), band=2.0, warmup=15, last_entry=60, flat_before=15)


def bars(session: dt.date, close: np.ndarray, *, skip: tuple[int, ...] = ()) -> pl.DataFrame:
    """SPY minute bars with the given closes (vwap = close, volume 1,000), minutes ``skip``
    missing."""
    opn, _ = session_open_close(session)
    keep = [k for k in range(close.size) if k not in skip]
    return pl.DataFrame(
        {
            "ts": [(opn + dt.timedelta(minutes=k)).to_pydatetime() for k in keep],
            "symbol": "SPY",
            "open": close[keep],
            "high": close[keep],
            "low": close[keep],
            "close": close[keep],
            "volume": 1_000.0,
            "vwap": close[keep],
            "trade_count": 10,
            "session": session,
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))


def book(held: int = 0) -> Book:
    return Book.build(CASH, (Position("SPY", held, 100.0, 100.0),) if held else ())


def wiggle(n: int) -> np.ndarray:
    """100 +/- 0.1 alternating: a session VWAP of 100 with a standard deviation of 0.1."""
    return 100.0 + 0.1 * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)


def decide_at(strategy: VWAPReversion, day: pl.DataFrame, session, closed: int, held: int = 0):
    return strategy.decide(snapshot_at(day, session, closed), book(held))


def test_registered_as_a_minute_family() -> None:
    assert get_strategy_class("vwap_reversion") is VWAPReversion
    assert VWAPReversion.timeframe == "1m"
    assert create_strategy("vwap_reversion", {"band": 1.5}).config.band == 1.5
    assert VWAPReversionConfig().lookback_bars() == 0  # the VWAP restarts every session


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"band": 0.0}, "band must be > 0"),
        ({"exit_band": 2.0}, "exit_band must be < band"),
        ({"stop": 1.5}, "stop must be 0"),
        ({"last_entry": 15, "flat_before": 15}, "last_entry must be > flat_before"),
        ({"warmup": 0}, "warmup and flat_before must be >= 1"),
    ],
)
def test_invalid_configs_are_refused(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VWAPReversionConfig(**params)


def test_buys_a_stretch_below_the_vwap_and_sells_the_return_to_it() -> None:
    close = wiggle(60)
    close[30] = 99.0  # 10 deviations under the VWAP
    close[31] = 99.5  # still under: hold
    close[32] = 100.2  # back above the VWAP: exit
    day = bars(FULL_DAY, close)
    strategy = VWAPReversion(CONFIG)
    assert decide_at(strategy, day, FULL_DAY, 30) == []  # bar 29 closed: nothing
    (buy,) = decide_at(strategy, day, FULL_DAY, 31)  # bar 30 closed
    assert buy.legs[0].side is Side.BUY and buy.qty == int(CASH // 99.0)
    assert decide_at(strategy, day, FULL_DAY, 32, held=1000) == []
    (sell,) = decide_at(strategy, day, FULL_DAY, 33, held=1000)
    assert sell.legs[0].side is Side.SELL and sell.qty == 1000 and sell.reason == "back to VWAP"


def test_no_entry_during_warmup_or_after_last_entry() -> None:
    close = wiggle(390)
    close[5] = 95.0  # before 15 closed minutes
    close[340] = 95.0  # 50 minutes before the close, inside last_entry = 60
    day = bars(FULL_DAY, close)
    strategy = VWAPReversion(CONFIG)
    assert decide_at(strategy, day, FULL_DAY, 6) == []
    assert decide_at(strategy, day, FULL_DAY, 341) == []
    entries, _ = strategy.signals(MinutePanel.build(day, ("SPY",), [session_open_close(FULL_DAY)]))
    assert not entries.any()


def test_a_minute_without_a_new_bar_is_not_acted_on() -> None:
    close = wiggle(60)
    close[30] = 99.0
    day = bars(FULL_DAY, close, skip=(31,))
    strategy = VWAPReversion(CONFIG)
    assert len(decide_at(strategy, day, FULL_DAY, 31)) == 1  # bar 30's close: entry
    assert decide_at(strategy, day, FULL_DAY, 32) == []  # bar 31 missing: nothing new


def test_flat_before_the_half_days_real_close() -> None:
    """13:00 close: forced exit once 195 of 210 minutes have closed, with or without a bar."""
    day = bars(HALF_DAY, wiggle(210), skip=tuple(range(190, 210)))
    strategy = VWAPReversion(CONFIG)
    assert decide_at(strategy, day, HALF_DAY, 194, held=10) == []
    (sell,) = decide_at(strategy, day, HALF_DAY, 195, held=10)
    assert sell.legs[0].side is Side.SELL and sell.reason == "flat before close"
    assert decide_at(strategy, day, HALF_DAY, 195, held=0) == []
    _, exits = strategy.signals(MinutePanel.build(day, ("SPY",), [session_open_close(HALF_DAY)]))
    assert exits[194:, 0].all() and not exits[190:194, 0].any()


def test_the_session_bounds_must_come_with_the_snapshot() -> None:
    opn, _ = session_open_close(FULL_DAY)
    snap = MarketSnapshot(
        (opn + dt.timedelta(minutes=20)).to_pydatetime(), FULL_DAY, {}, NO_HISTORY
    )
    with pytest.raises(ValueError, match="session_open.*session_close"):
        VWAPReversion(CONFIG).decide(snap, book())
    naive = {SESSION_OPEN: dt.datetime(2024, 12, 2, 14, 30), SESSION_CLOSE: opn}  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        VWAPReversion(CONFIG).decide(
            MarketSnapshot(snap.ts, FULL_DAY, {}, NO_HISTORY, features=naive), book()
        )


def random_day(seed: int, session: dt.date) -> pl.DataFrame:
    opn, cls = session_open_close(session)
    n = int((cls - opn) / dt.timedelta(minutes=1))
    rng = np.random.default_rng(seed)
    close = np.round(100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n))), 2)
    skip = tuple(int(k) for k in rng.choice(n, size=5, replace=False))
    day = bars(session, close, skip=skip)
    volume = pl.Series(rng.integers(1, 5_000, day.height).astype(float))
    return day.with_columns(volume=volume, vwap=pl.col("close") + 0.01)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(1, 389))
def test_later_minutes_never_change_an_earlier_signal(seed: int, cut: int) -> None:
    day = random_day(seed, FULL_DAY)
    bounds = [session_open_close(FULL_DAY)]
    strategy = VWAPReversion(VWAPReversionConfig(band=1.0, stop=3.0, warmup=5))
    full = strategy.signals(MinutePanel.build(day, ("SPY",), bounds))
    cut_ts = bounds[0][0] + dt.timedelta(minutes=cut)
    early = strategy.signals(MinutePanel.build(day.filter(pl.col("ts") < cut_ts), ("SPY",), bounds))
    for f, e in zip(full, early, strict=True):
        assert (f[:cut] == e[:cut]).all()


@pytest.mark.parametrize("session", [HALF_DAY, FULL_DAY])
def test_decisions_before_a_cut_ignore_the_minutes_after_it(session: dt.date) -> None:
    """Stepping decide() over a session cut at 13:00 New York makes the same decisions up to
    the cut as stepping over the whole session, and every round trip closes the same day."""
    day = random_day(11, session)
    strategy = VWAPReversion(VWAPReversionConfig(band=1.0, warmup=5))
    cut = dt.datetime.combine(session, dt.time(16, 30), dt.UTC)  # 11:30 New York
    full, full_log = step_round_trips(strategy, day, [session])
    _, cut_log = step_round_trips(strategy, day.filter(pl.col("ts") < cut), [session])
    before = [(t, i) for t, i in full_log if t <= cut]
    assert before and [(t, i) for t, i in cut_log if t <= cut] == before
    assert full and all(exit_ is not None for _, _, exit_ in full)


def test_the_panel_ignores_bars_outside_regular_hours_and_fills_gaps() -> None:
    opn, cls = session_open_close(HALF_DAY)
    day = bars(HALF_DAY, wiggle(210), skip=(0, 1, 50))
    extra = day.head(2).with_columns(
        ts=pl.Series([opn - dt.timedelta(minutes=1), cls]).cast(pl.Datetime("ns", "UTC")),
        close=pl.Series([1.0, 2.0]),
    )
    panel = MinutePanel.build(pl.concat([day, extra]), ("SPY",), [(opn, cls)])
    assert panel.close.shape == (210, 1) and panel.has_bar.sum() == 207
    assert panel.close[0, 0] == panel.close[1, 0] == panel.close[2, 0]  # back-filled start
    assert panel.close[50, 0] == panel.close[49, 0]  # forward-filled gap
    assert 1.0 not in panel.close and 2.0 not in panel.close
