"""The synthetic market is deterministic per (seed, symbol, session) and realistic enough."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.sources import synthetic_market as sm
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars, minute_bars


def test_same_inputs_same_frame_different_seed_different_market() -> None:
    day = dt.date(2024, 5, 15)
    a = minute_bars(7, ("SPY", "AAPL"), day)
    assert a.equals(minute_bars(7, ("AAPL", "SPY"), day))  # order of request does not matter
    assert not a.equals(minute_bars(8, ("SPY", "AAPL"), day))


def test_a_symbol_does_not_depend_on_the_rest_of_the_universe() -> None:
    day = dt.date(2024, 5, 15)
    alone = minute_bars(7, ("AAPL",), day)
    together = minute_bars(7, ("SPY", "AAPL", "NVDA"), day).filter(pl.col("symbol") == "AAPL")
    assert alone.equals(together)


def test_daily_bars_aggregate_minute_bars_and_chain_overnight() -> None:
    d1, d2 = dt.date(2024, 5, 14), dt.date(2024, 5, 15)
    m = minute_bars(7, ("SPY",), d2)
    d = daily_bars(7, ("SPY",), d2).row(0, named=True)
    assert d["open"] == m["open"][0] and d["close"] == m["close"][-1]
    assert d["high"] == m["high"].max() and d["low"] == m["low"].min()
    assert d["volume"] == m["volume"].sum()
    prev = daily_bars(7, ("SPY",), d1).row(0, named=True)
    assert d["open"] != prev["close"]  # an overnight gap exists


@pytest.fixture(scope="module")
def spy_returns() -> np.ndarray:
    return np.diff(np.log(sm.daily_path(7, "SPY").close))


def test_profile_volatility_is_respected(spy_returns: np.ndarray) -> None:
    for sym in ("SPY", "AAPL", "NVDA"):
        r = np.diff(np.log(sm.daily_path(7, sym).close))
        realized = r.std() * np.sqrt(252)
        assert 0.8 * sm.CATALOG[sym].vol < realized < 1.3 * sm.CATALOG[sym].vol


def test_fat_tails_and_volatility_clustering(spy_returns: np.ndarray) -> None:
    assert stats.kurtosis(spy_returns) > 2.0  # excess kurtosis: fat tails
    a = np.abs(spy_returns)
    assert np.corrcoef(a[:-1], a[1:])[0, 1] > 0.05  # |r| autocorrelated: clustering
    assert abs(np.corrcoef(spy_returns[:-1], spy_returns[1:])[0, 1]) < 0.1  # no free lunch


def test_beta_to_market_factor() -> None:
    spy = np.diff(np.log(sm.daily_path(7, "SPY").close))
    for sym, lo, hi in (("NVDA", 1.2, 2.0), ("KO", 0.3, 0.8)):
        r = np.diff(np.log(sm.daily_path(7, sym).close))
        beta = np.cov(r, spy)[0, 1] / spy.var()
        assert lo < beta < hi, (sym, beta)


def test_u_shaped_intraday_volume() -> None:
    sessions = cal.sessions_between(dt.date(2024, 4, 1), dt.date(2024, 4, 30))
    frames = [minute_bars(7, ("SPY",), d) for d in sessions if not cal.is_early_close(d)]
    m = pl.concat(frames).with_columns(
        pl.col("ts").dt.convert_time_zone("America/New_York").dt.hour().alias("h"),
        pl.col("ts").dt.convert_time_zone("America/New_York").dt.minute().alias("mi"),
    )
    first = m.filter(pl.col("h") == 9)["volume"].mean()
    midday = m.filter(pl.col("h").is_between(12, 13))["volume"].mean()
    last = m.filter((pl.col("h") == 15) & (pl.col("mi") >= 30))["volume"].mean()
    assert first > 1.5 * midday and last > 1.5 * midday


def test_halts_leave_missing_minutes_somewhere() -> None:
    sessions = cal.sessions_between(dt.date(2024, 1, 2), dt.date(2024, 6, 28))
    syms = ("SPY", "QQQ", "AAPL", "MSFT", "NVDA")
    short = sum(
        1
        for d in sessions
        for s in syms
        if minute_bars(7, (s,), d).height < (210 if cal.is_early_close(d) else 390)
    )
    assert 5 < short < 0.2 * len(sessions) * len(syms)


def test_unknown_symbol_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown symbol 'ZZZZ'.*known symbols: AAPL"):
        minute_bars(7, ("ZZZZ",), dt.date(2024, 5, 15))
