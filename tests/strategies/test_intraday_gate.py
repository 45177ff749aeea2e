"""A daily family gated on intraday features: the session features by hand, one definition for
decisions and sweeps (the snapshot's as-of form equals the vectorized frame), no look-ahead
(hypothesis: a session's features never change when later minutes or sessions arrive), missing
minute data closes the gate, and ``decide()`` at session t equals the vectorized signal at row t
with the gate on (and everything is unchanged with it off)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars, minute_bars
from contracts.calendar import session_open_close
from strategies.backtest import signal_fastpath as fp
from strategies.backtest.options_engine import run_options_backtest
from strategies.backtest.synthetic import synthetic_chains
from strategies.base import ParamSpace, Strategy
from strategies.equity import Momentum, MomentumConfig
from strategies.equity.intraday_gate import GATES, DailyInputs, gate_mask
from strategies.indicators.session_features import (
    FEATURE_COLUMNS,
    IntradayFeatureMatrix,
    IntradayFeatures,
    features_by_session,
    intraday_feature_frame,
    intraday_features_asof,
)
from strategies.models import Book, MarketSnapshot, OrderIntent, Position, Side

NY = ZoneInfo("America/New_York")
SYMBOLS = ("AAPL", "SPY", "XOM")
# 45 sessions ending after Thanksgiving 2024 (the Friday after is a half day, 13:00 close)
SESSIONS = cal.sessions_between(dt.date(2024, 10, 1), dt.date(2024, 12, 3))
HALF_DAY = dt.date(2024, 11, 29)
FAST = {"lookback": 3, "enter": 0.0, "leave": -0.005, "trend": 0}  # many entries in 45 sessions


def bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    opn, cls = session_open_close(day)
    return opn.to_pydatetime(), cls.to_pydatetime()


def session_frame(days: list[dt.date]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "session": days,
            "open": [bounds(d)[0] for d in days],
            "close": [bounds(d)[1] for d in days],
        }
    )


@pytest.fixture(scope="module")
def lake() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Synthetic minute bars and the daily bars aggregated from them (the lake's generator)."""
    minute = pl.concat([minute_bars(7, SYMBOLS, s) for s in SESSIONS])
    daily = pl.concat([daily_bars(7, SYMBOLS, s) for s in SESSIONS]).sort("session", "symbol")
    return minute, daily


def test_features_by_hand_on_a_half_day() -> None:
    """210 bars of the half day: close = 100 + k/100 rising by the minute, volume 1, VWAP = the
    close; the 13:00 close is above the opening range and an hour earlier was bar 149."""
    opn, cls = bounds(HALF_DAY)
    k = np.arange(210)
    px = 100.0 + k / 100.0
    bars = pl.DataFrame(
        {
            "symbol": "AAA",
            "ts": [opn + dt.timedelta(minutes=int(i)) for i in k],
            "open": px,
            "high": px + 0.005,
            "low": px - 0.005,
            "close": px,
            "volume": 1.0,
        }
    )
    got = intraday_features_asof(HALF_DAY, bars, opn, cls)["AAA"]
    assert got.bars == 210 and got.session == HALF_DAY
    assert got.vwap_distance == pytest.approx(px[-1] / px.mean() - 1.0, rel=1e-12)
    assert got.last_hour_return == pytest.approx(px[-1] / px[149] - 1.0, rel=1e-12)
    assert got.rv_intraday == pytest.approx(np.sqrt(np.sum(np.diff(np.log(px)) ** 2)), rel=1e-12)
    assert got.orb_breakout == 1.0
    # at 09:50 the opening range (30 min) is not complete, and no bar closed an hour before
    early = intraday_features_asof(HALF_DAY, bars, opn, cls, asof=opn + dt.timedelta(minutes=20))
    assert early["AAA"].bars == 20
    assert np.isnan(early["AAA"].orb_breakout) and np.isnan(early["AAA"].last_hour_return)


def test_the_snapshot_form_equals_the_sweep_frame(lake) -> None:
    """Every (symbol, session): the features from that session's bars alone (what the live
    runner computes at the close) equal the frame over all sessions exactly."""
    minute, _ = lake
    frame = intraday_feature_frame(minute, session_frame(SESSIONS))
    assert frame.height == len(SESSIONS) * len(SYMBOLS)
    assert frame.filter(pl.col("session") == HALF_DAY)["bars"].to_list() == [210] * 3
    for day in SESSIONS[-8:]:
        one = minute.filter(pl.col("session") == day)
        snap = intraday_features_asof(day, one, *bounds(day))
        for row in frame.filter(pl.col("session") == day).iter_rows(named=True):
            assert same_features(snap[row["symbol"]], IntradayFeatures(**row)), (day, row)


def random_minutes(seed: int, days: list[dt.date], drop: float) -> pl.DataFrame:
    """Random-walk bars of two symbols (some minutes missing, a few pre-market bars)."""
    rng = np.random.default_rng(seed)
    rows = []
    for symbol in ("AAA", "BBB"):
        px = 100.0
        for day in days:
            opn, cls = bounds(day)
            for k in [-2, -1, *range(int((cls - opn).total_seconds()) // 60)]:
                px *= float(np.exp(rng.normal(0.0, 0.002)))
                if k >= 0 and rng.random() < drop:
                    continue
                rows.append(
                    {
                        "symbol": symbol,
                        "ts": opn + dt.timedelta(minutes=k),
                        "open": px,
                        "high": px * 1.001,
                        "low": px * 0.999,
                        "close": px,
                        "volume": float(rng.integers(0, 500)),
                        "vwap": px * (1.0 + rng.normal(0.0, 0.0005)),
                    }
                )
    return pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("us", "UTC")})


PROPERTY_DAYS = [dt.date(2024, 11, 27), HALF_DAY, dt.date(2024, 12, 2)]


def _same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns and a.height == b.height
    for col in a.columns:
        x, y = a.get_column(col), b.get_column(col)
        if x.dtype.is_float():
            xs, ys = x.to_numpy(), y.to_numpy()
            assert (np.isnan(xs) == np.isnan(ys)).all(), col
            np.testing.assert_array_equal(xs[~np.isnan(xs)], ys[~np.isnan(ys)])
        else:
            assert x.to_list() == y.to_list(), col


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    day=st.integers(0, len(PROPERTY_DAYS) - 1),
    offset=st.integers(-1800, 7 * 3600),
    drop=st.sampled_from([0.0, 0.3, 0.95]),
)
def test_a_sessions_features_never_change_when_later_minutes_arrive(
    seed: int, day: int, offset: int, drop: float
) -> None:
    """At any moment t: (a) the features of every session closed by t, and (b) the as-of
    features of the session trading at t, are the same from all the bars as from the bars
    closed by t (later minutes of the session and later sessions added change nothing)."""
    bars = random_minutes(seed, PROPERTY_DAYS, drop)
    opn, cls = bounds(PROPERTY_DAYS[day])
    t = opn + dt.timedelta(seconds=offset)
    known = bars.filter(pl.col("ts") + pl.duration(minutes=1) <= pl.lit(t.astimezone(dt.UTC)))
    closed = [d for d in PROPERTY_DAYS if bounds(d)[1] <= t]
    if closed:
        sessions = session_frame(closed)
        _same(intraday_feature_frame(bars, sessions), intraday_feature_frame(known, sessions))
    if opn <= t <= cls:
        full = intraday_features_asof(PROPERTY_DAYS[day], bars, opn, cls, asof=t)
        past = intraday_features_asof(PROPERTY_DAYS[day], known, opn, cls, asof=t)
        assert full.keys() == past.keys()
        for symbol, feats in full.items():
            assert same_features(feats, past[symbol]), (symbol, t)


def same_features(a: IntradayFeatures, b: IntradayFeatures) -> bool:
    """Field by field, exactly (NaN equals NaN)."""
    for name in FEATURE_COLUMNS:
        x, y = getattr(a, name), getattr(b, name)
        if not (x == y or (isinstance(x, float) and np.isnan(x) and np.isnan(y))):
            return False
    return True


def test_the_property_is_not_vacuous() -> None:
    """At the half day's close every feature of both symbols is a number (so the property
    compares values), and cutting the minutes an hour early does change the session's row."""
    bars = random_minutes(3, PROPERTY_DAYS, 0.1)
    frame = intraday_feature_frame(bars, session_frame([HALF_DAY]))
    assert frame.height == 2
    assert (
        frame.drop("symbol", "session").select(pl.all().cast(pl.Float64).is_nan().any()).row(0)
        == (False,) * 5
    )
    opn, cls = bounds(HALF_DAY)
    early = intraday_features_asof(HALF_DAY, bars, opn, cls, asof=cls - dt.timedelta(hours=1))
    assert early["AAA"].vwap_distance != frame.row(0, named=True)["vwap_distance"]


def _inputs(lake, drop_session: dt.date | None = None) -> tuple[DailyInputs, pl.DataFrame]:
    minute, daily = lake
    if drop_session is not None:  # XOM has no minute bars that session
        minute = minute.filter(~((pl.col("session") == drop_session) & (pl.col("symbol") == "XOM")))
    frame = intraday_feature_frame(minute, session_frame(SESSIONS))
    close = daily.pivot(on="symbol", index="session", values="close").sort("session")
    arr = close.select(SYMBOLS).to_numpy().astype(np.float64)
    return DailyInputs(arr, IntradayFeatureMatrix.from_frame(frame, SESSIONS, SYMBOLS)), minute


def _snapshot(daily: pl.DataFrame, minute: pl.DataFrame, t: int, symbol: str) -> MarketSnapshot:
    """What the live runner sees at session t's close: daily bars up to t and the intraday
    features of session t's minute bars (nothing later)."""
    day = SESSIONS[t]
    history = daily.filter((pl.col("session") <= day) & (pl.col("symbol") == symbol))
    feats = intraday_features_asof(day, minute.filter(pl.col("session") == day), *bounds(day))
    price = float(history["close"][-1])
    return MarketSnapshot(bounds(day)[1], day, {symbol: price}, history, intraday_features=feats)


@pytest.mark.parametrize("gate", sorted(GATES))
def test_decide_at_session_t_equals_the_vectorized_signal_at_row_t(lake, gate: str) -> None:
    """For every session t and symbol, flat and long: ``decide()`` buys exactly where the gated
    vectorized entry (and no exit) is, sells exactly where the exit (and no gated entry) is. The
    gate really removes entries (else the test would not tell gated from ungated)."""
    inputs, minute = _inputs(lake)
    _, daily = lake
    config = MomentumConfig(symbols=SYMBOLS, intraday_gate=gate, **FAST)
    entries, exits = Momentum(config).signals(inputs)
    plain, _ = Momentum(MomentumConfig(symbols=SYMBOLS, **FAST)).signals(inputs.close)
    assert entries.sum() > 0 and (plain & ~entries).sum() > 0
    for j, symbol in enumerate(SYMBOLS):
        one = Momentum(MomentumConfig(symbols=(symbol,), intraday_gate=gate, **FAST))
        for t in range(1, len(SESSIONS)):
            snap = _snapshot(daily, minute, t, symbol)
            flat = one.decide(snap, Book.build(100_000.0))
            held = one.decide(snap, Book.build(100_000.0, (Position(symbol, 10, 1.0, 1.0),)))
            buy = bool(entries[t, j] and not exits[t, j])
            sell = bool(exits[t, j] and not entries[t, j])
            assert [i.legs[0].side for i in flat] == ([Side.BUY] if buy else []), (t, symbol)
            assert [i.legs[0].side for i in held] == ([Side.SELL] if sell else []), (t, symbol)


def test_missing_minute_data_closes_the_gate_and_never_blocks_an_exit(lake) -> None:
    """A session without minute bars for XOM: NaN features, the gate closed (no entry) in both
    forms, while an exit still goes through; a snapshot with no or stale features buys nothing."""
    _, daily = lake
    config = MomentumConfig(symbols=SYMBOLS, intraday_gate="above_vwap", **FAST)
    plain, plain_exits = Momentum(MomentumConfig(symbols=SYMBOLS, **FAST)).signals(
        _inputs(lake)[0].close
    )
    # a session where XOM's ungated entry fires
    t = next(i for i in range(10, len(SESSIONS)) if plain[i, 2] and not plain_exits[i, 2])
    inputs, minute = _inputs(lake, drop_session=SESSIONS[t])
    assert np.isnan(inputs.intraday.values["vwap_distance"][t, 2])
    assert not gate_mask(inputs.intraday, "above_vwap")[t, 2]
    entries, exits = Momentum(config).signals(inputs)
    assert not entries[t, 2]
    one = Momentum(MomentumConfig(symbols=("XOM",), intraday_gate="above_vwap", **FAST))
    snap = _snapshot(daily, minute, t, "XOM")
    assert "XOM" not in snap.intraday_features
    assert one.decide(snap, Book.build(100_000.0)) == []
    # stale features (the session before) close the gate too
    prev = _snapshot(daily, minute, t - 1, "XOM").intraday_features
    stale = MarketSnapshot(snap.ts, snap.session, snap.prices, snap.history, intraday_features=prev)
    assert one.decide(stale, Book.build(100_000.0)) == []
    # an exit is never gated: the first exit of XOM decides a sell with no features at all
    x = next(i for i in range(10, len(SESSIONS)) if exits[i, 2] and not entries[i, 2])
    bare = _snapshot(daily, minute, x, "XOM")
    bare = MarketSnapshot(bare.ts, bare.session, bare.prices, bare.history)
    held = Book.build(100_000.0, (Position("XOM", 10, 1.0, 1.0),))
    assert [i.legs[0].side for i in one.decide(bare, held)] == [Side.SELL]


def test_gate_off_is_unchanged_and_the_fast_path_agrees(lake) -> None:
    """Off: signals on DailyInputs equal signals on the closes, and the fused fast path gives
    the same numbers; gated points on the fast path equal the compiled state machine run on the
    gated signals; a gated variant without features is one clear error."""
    inputs, _ = _inputs(lake)
    off = Momentum(MomentumConfig(symbols=SYMBOLS, **FAST))
    for a, b in zip(off.signals(inputs), off.signals(inputs.close), strict=True):
        np.testing.assert_array_equal(a, b)
    points = [FAST, {**FAST, "intraday_gate": "last_hour_up"}, {**FAST, "trend": 20}]
    costs = {"fees": 0.001, "slippage": 0.0005, "init_cash": 10_000.0, "threads": 1}
    ret, trades = Momentum.sweep_fast_path(inputs, points, **costs)
    ret0, trades0 = Momentum.sweep_fast_path(inputs.close, [points[0], points[2]], **costs)
    np.testing.assert_array_equal(ret[[0, 2]], ret0)
    np.testing.assert_array_equal(trades[[0, 2]], trades0)
    e, x = Momentum(MomentumConfig(symbols=SYMBOLS, **points[1])).signals(inputs)
    r1, t1 = fp.simulate_signals(inputs.close, e, x, **costs)
    np.testing.assert_allclose(ret[1], r1, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(trades[1], t1)
    gated = Momentum(MomentumConfig(symbols=SYMBOLS, **points[1]))
    with pytest.raises(ValueError, match="needs the sessions' intraday features"):
        gated.signals(inputs.close)
    with pytest.raises(ValueError, match="intraday_gate must be 'off' or one of"):
        MomentumConfig(intraday_gate="sideways")


def test_a_fused_kernel_never_drops_a_gate_silently(lake) -> None:
    """Gated points on bare closes: the fused fast path refuses them (its kernel has no gate)."""
    inputs, _ = _inputs(lake)
    with pytest.raises(ValueError, match="needs the sessions' intraday features"):
        Momentum.sweep_fast_path(
            inputs.close,
            [{**FAST, "intraday_gate": "orb_up"}],
            fees=0.0,
            slippage=0.0,
            init_cash=1.0,
        )


@dataclass(frozen=True)
class ProbeConfig:
    seen: list = field(default_factory=list)


class Probe(Strategy):
    """Records each snapshot's intraday features; trades nothing."""

    name = "probe"
    config_cls = ProbeConfig

    @classmethod
    def param_space(cls) -> ParamSpace:
        return ParamSpace((), ProbeConfig)

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        self.config.seen.append((snapshot.session, dict(snapshot.intraday_features)))
        return []


def test_the_stepped_backtest_engine_hands_each_session_its_features() -> None:
    """``run_options_backtest(intraday_features=frame)``: each session's snapshot carries that
    session's rows of the frame, nothing of another session (a session left out of the frame
    gives none)."""
    days = [dt.date(2024, 12, d) for d in (2, 3, 4, 5, 6)]
    minute = pl.concat([minute_bars(7, ("SPY",), d) for d in days])
    frame = intraday_feature_frame(minute, session_frame(days))
    archive = synthetic_chains("SPY", start=days[0], sessions=len(days))
    probe = Probe(ProbeConfig())
    run_options_backtest(
        probe, archive, intraday_features=frame.filter(pl.col("session") != days[2])
    )
    seen = dict(probe.config.seen)
    assert list(seen) == days
    assert seen[days[2]] == {}
    expected = features_by_session(frame)
    for day in (d for d in days if d != days[2]):
        assert seen[day]["SPY"].session == day
        assert same_features(seen[day]["SPY"], expected[day]["SPY"])
