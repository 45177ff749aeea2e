"""Historical stress windows: replays equal per-session full revaluation; windows are found."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from strategies.pricing import bs_price
from strategies.stress import OptionPosition, StockPosition, StressBook
from strategies.stress.history import StressWindow, find_windows, replay_window

TODAY = date(2024, 6, 3)
SESSIONS = [date(2020, 3, 2) + timedelta(days=d) for d in (0, 1, 2, 3, 4, 7, 8)]
CLOSES = {"SPY": [300.0, 290.0, 285.0, 250.0, 260.0, 262.0, 255.0]}
ATM_IV = {"SPY": [0.20, 0.25, np.nan, 0.60, 0.50, 0.45, 0.48]}


def test_replay_equals_revaluing_the_book_at_each_session() -> None:
    """Today's spot moved by the window's return, vol by its ATM change (NaN keeps the last),
    the calendar by the days elapsed; each session priced with bs_price (QuantLib-checked)."""
    legs: list[OptionPosition | StockPosition] = [
        OptionPosition("SPY", "P", 480.0, TODAY + timedelta(days=30), -5.0, 0.18),
        OptionPosition("SPY", "C", 520.0, TODAY + timedelta(days=3), 2.0, 0.15),  # expires inside
        StockPosition("SPY", 100.0),
    ]
    book = StressBook.build(legs, {"SPY": 500.0}, TODAY, rate=0.03)
    out = replay_window(book, SESSIONS, CLOSES, ATM_IV, name="covid")
    close = np.array(CLOSES["SPY"])
    iv_moves = np.array([0.0, 0.05, 0.05, 0.40, 0.30, 0.25, 0.28])
    now = book.units @ bs_price(500.0, book.strike, book.t, 0.03, book.iv, 0.0, book.is_call)
    for d, s in enumerate(SESSIONS):
        spot = 500.0 * close[d] / close[0]
        t = np.maximum(book.t - (s - SESSIONS[0]).days / 365, 0.0)
        value = bs_price(spot, book.strike, t, 0.03, book.iv + iv_moves[d], 0.0, book.is_call)
        expected = book.units @ value - now + 100.0 * (spot - 500.0)
        assert out.cumulative[d] == pytest.approx(expected, rel=1e-12, abs=1e-8)
    assert out.cumulative[0] == 0.0 and out.daily[0] == 0.0
    np.testing.assert_allclose(np.cumsum(out.daily), out.cumulative, rtol=1e-12, atol=1e-8)
    worst_session, worst = out.worst_day
    assert worst_session == SESSIONS[3]  # the -12% day with vol +35 points
    assert worst == pytest.approx(out.daily.min())
    assert out.worst_cumulative <= worst


def test_stock_book_replays_its_price_path_exactly() -> None:
    book = StressBook.build([StockPosition("SPY", -10.0)], {"SPY": 500.0}, TODAY)
    out = replay_window(book, SESSIONS, CLOSES, None, decay=False)
    expected = -10.0 * 500.0 * (np.array(CLOSES["SPY"]) / 300.0 - 1.0)
    np.testing.assert_allclose(out.cumulative, expected, rtol=1e-12, atol=1e-9)


def test_proxy_stands_in_for_a_missing_underlying() -> None:
    book = StressBook.build([StockPosition("XYZ", 1.0)], {"XYZ": 50.0}, TODAY)
    with pytest.raises(ValueError, match="no path for XYZ"):
        replay_window(book, SESSIONS, CLOSES, ATM_IV)
    out = replay_window(book, SESSIONS, CLOSES, ATM_IV, proxy="SPY")
    assert out.cumulative[3] == pytest.approx(50.0 * (250.0 / 300.0 - 1.0), rel=1e-12)


def test_find_windows_names_the_planted_crash_and_vol_spike() -> None:
    rng = np.random.default_rng(2)
    n = 300
    sessions = [date(2024, 1, 1) + timedelta(days=i) for i in range(n)]
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.005, n)))
    close[150:155] *= np.linspace(0.97, 0.80, 5)  # a 20% slide over five sessions
    close[155:] *= 0.80
    iv = np.full(n, 0.2)
    iv[220:] = 0.5  # a step up in vol at session 220
    windows = {w.name: w for w in find_windows(sessions, close, iv, length=5)}
    assert sessions[148] <= windows["crash"].start <= sessions[150]
    assert windows["vol_spike"].start <= sessions[220] <= windows["vol_spike"].end
    with pytest.raises(ValueError, match="more than 5 sessions"):
        find_windows(sessions[:5], close[:5], length=5)
    with pytest.raises(ValueError, match="must end after"):
        StressWindow("bad", sessions[3], sessions[1])
