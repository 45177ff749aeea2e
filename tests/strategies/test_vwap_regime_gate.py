"""vwap_reversion's optional daily-regime gate (``regime_sma``): off by default; when on it removes
exactly the entries of sessions whose prior daily regime is down (exits untouched), and
``decide()`` reading the daily bars in ``snapshot.history`` makes the vectorized decisions."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl
import pytest

from contracts.calendar import session_open_close, sessions_between
from strategies.equity import VWAPReversion, VWAPReversionConfig
from strategies.equity.intraday import MinutePanel
from strategies.models import Book, Position, Side
from tests.intraday_steps import CASH, snapshot_at

SESSIONS = sessions_between(dt.date(2024, 11, 12), dt.date(2024, 12, 3))  # incl. 11-29 half day
N = 3
ON = VWAPReversionConfig(band=1.0, warmup=5, regime_sma=N)
OFF = dataclasses.replace(ON, regime_sma=0)


def path(seed: int) -> pl.DataFrame:
    """SPY minute bars over SESSIONS: a random walk whose drift flips sign every few sessions,
    so the daily regime goes both ways; a few minutes missing, never a session's last."""
    rng = np.random.default_rng(seed)
    frames = []
    px = 100.0
    for i, session in enumerate(SESSIONS):
        opn, cls = session_open_close(session)
        n = int((cls - opn) / dt.timedelta(minutes=1))
        drift = 0.0004 if (i // 4) % 2 == 0 else -0.0004
        close = px * np.exp(np.cumsum(rng.normal(drift, 0.002, n)))
        px = float(close[-1])
        keep = np.sort(np.setdiff1d(np.arange(n), rng.choice(n - 1, size=5, replace=False)))
        frames.append(
            pl.DataFrame(
                {
                    "ts": [(opn + dt.timedelta(minutes=int(k))).to_pydatetime() for k in keep],
                    "symbol": "SPY",
                    "open": close[keep],
                    "high": close[keep],
                    "low": close[keep],
                    "close": close[keep],
                    "volume": rng.integers(1, 5_000, keep.size).astype(float),
                    "vwap": close[keep] + 0.01,
                    "trade_count": 10,
                    "session": session,
                }
            ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
        )
    return pl.concat(frames)


def daily(bars: pl.DataFrame) -> pl.DataFrame:
    """Daily bars (session, symbol, close): each session's last minute close."""
    return bars.group_by("session", "symbol").agg(pl.col("close").last()).sort("session")


def hand_gate(bars: pl.DataFrame, panel: MinutePanel) -> np.ndarray:
    """Per panel row: was the prior session's close above the mean of the N closes ending
    there (numpy, independent of the strategy's polars SMA)."""
    closes = daily(bars).get_column("close").to_numpy()
    up = np.array(
        [k >= N - 1 and closes[k] > closes[k - N + 1 : k + 1].mean() for k in range(closes.size)]
    )
    prior = panel.session_index - 1
    return np.where(prior >= 0, up[np.maximum(prior, 0)], False)


def test_off_by_default() -> None:
    assert VWAPReversionConfig().regime_sma == 0
    assert VWAPReversionConfig().lookback_bars() == 0
    assert ON.lookback_bars() == N
    with pytest.raises(ValueError, match="regime_sma must be 0"):
        VWAPReversionConfig(regime_sma=1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_gate_removes_exactly_the_entries_of_down_regime_sessions(seed: int) -> None:
    bars = path(seed)
    panel = MinutePanel.build(bars, ("SPY",), [session_open_close(s) for s in SESSIONS])
    e_off, x_off = VWAPReversion(OFF).signals(panel)
    e_on, x_on = VWAPReversion(ON).signals(panel)
    gate = hand_gate(bars, panel)
    np.testing.assert_array_equal(x_on, x_off)
    np.testing.assert_array_equal(e_on[:, 0], e_off[:, 0] & gate)
    # not vacuous: the gate both keeps and removes entries
    assert (e_off[:, 0] & gate).any() and (e_off[:, 0] & ~gate).any()


def test_decide_gates_on_the_daily_bars_in_history_like_the_vectorized_form() -> None:
    bars = path(2)
    panel = MinutePanel.build(bars, ("SPY",), [session_open_close(s) for s in SESSIONS])
    e_on, _ = VWAPReversion(ON).signals(panel)
    e_off, _ = VWAPReversion(OFF).signals(panel)
    history = daily(bars)
    checked = {True: 0, False: 0}
    for k, session in enumerate(SESSIONS[N:], start=N):
        rows = np.flatnonzero(panel.session_index == k)
        day = bars.filter(pl.col("session") == session).sort("ts")
        if not e_off[rows, 0].any():
            continue
        gate_open = bool(e_on[rows, 0].any())
        for r in rows[e_off[rows, 0]]:
            snap = snapshot_at(day, session, int(panel.minute[r]) + 1)
            snap = dataclasses.replace(snap, history=history.filter(pl.col("session") <= session))
            buys_on = VWAPReversion(ON).decide(snap, Book.build(CASH, ()))
            assert [i.legs[0].side for i in buys_on] == ([Side.BUY] if gate_open else [])
            assert len(VWAPReversion(OFF).decide(snap, Book.build(CASH, ()))) == 1
            held = Book.build(CASH, (Position("SPY", 100, 100.0, 100.0),))
            assert VWAPReversion(ON).decide(snap, held) == VWAPReversion(OFF).decide(snap, held)
            checked[gate_open] += 1
    assert checked[True] and checked[False]  # both an open and a closed gate were decided on
