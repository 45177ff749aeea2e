"""Multi-timeframe signals: hand-checked bars and as-of values on a tiny example, the combining
rules, and the no-look-ahead property (a value at t never changes when minutes after t arrive)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies.indicators.timeframes import (
    AllAgree,
    Gate,
    Rule,
    Signal,
    WeightedVote,
    bars_at,
    combine,
    multi_timeframe,
    roc_signal,
    rsi_signal,
    trend_signal,
    values_at,
    vol_signal,
)

NY = ZoneInfo("America/New_York")
# Tue, Wed, the half day after Thanksgiving (closes 13:00), Mon: as the XNYS calendar has them.
SESSIONS = (
    (dt.date(2024, 11, 26), 16),
    (dt.date(2024, 11, 27), 16),
    (dt.date(2024, 11, 29), 13),
    (dt.date(2024, 12, 2), 16),
)
SYMBOLS = ("AAA", "BBB")


def ny(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=NY)


def session_frame(sessions: tuple[tuple[dt.date, int], ...] = SESSIONS) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "session": [d for d, _ in sessions],
            "open": [ny(d, 9, 30) for d, _ in sessions],
            "close": [ny(d, h) for d, h in sessions],
        },
        schema_overrides={"open": pl.Datetime("us", "UTC"), "close": pl.Datetime("us", "UTC")},
    )


def minute_path(seed: int, drop: float = 0.1) -> pl.DataFrame:
    """Random-walk minute bars of SYMBOLS over SESSIONS (some minutes missing, a few
    pre-market bars that every timeframe must ignore)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for symbol in SYMBOLS:
        px = 100.0
        for day, close_hour in SESSIONS:
            start = ny(day, 9, 30)
            minutes = (close_hour * 60) - (9 * 60 + 30)
            for k in [-3, -2, -1, *range(minutes)]:
                px *= float(np.exp(rng.normal(0.0, 0.002)))
                if k >= 0 and rng.random() < drop:
                    continue
                rows.append(
                    {
                        "symbol": symbol,
                        "ts": start + dt.timedelta(minutes=k),
                        "open": px,
                        "high": px * 1.001,
                        "low": px * 0.999,
                        "close": px,
                        "volume": float(rng.integers(1, 1000)),
                        "vwap": px,
                    }
                )
    return pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("us", "UTC")})


def level() -> Signal:
    """The close itself: makes hand checks read bar closes directly."""
    return Signal("level", lambda: pl.col("close"), 0.0, 0.0)


def at(symbol: str, *moments: dt.datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {"symbol": [symbol] * len(moments), "t": list(moments)},
        schema_overrides={"t": pl.Datetime("us", "UTC")},
    )


@pytest.fixture(scope="module")
def tiny() -> pl.DataFrame:
    """One symbol, close = minute number since the first open: any bar's close names its
    last minute."""
    rows = []
    i = 0
    for day, close_hour in SESSIONS[2:]:
        start = ny(day, 9, 30)
        for k in range(close_hour * 60 - 570):
            rows.append(
                {
                    "symbol": "AAA",
                    "ts": start + dt.timedelta(minutes=k),
                    "open": float(i),
                    "high": float(i),
                    "low": float(i),
                    "close": float(i),
                    "volume": 1.0,
                }
            )
            i += 1
    return pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("us", "UTC")})


def test_hourly_and_daily_bars_close_on_their_last_minute(tiny: pl.DataFrame) -> None:
    sessions = session_frame(SESSIONS[2:])
    hourly = bars_at(tiny, "1h", sessions)
    half = hourly.filter(pl.col("session") == dt.date(2024, 11, 29))
    # hours from the open, like stock_bars_1h: 09:30-10:30, ..., a half day's last is 12:30-13:00
    day = dt.date(2024, 11, 29)
    assert half.get_column("ts").to_list() == [
        ny(day, h, 30).astimezone(dt.UTC) for h in (9, 10, 11, 12)
    ]
    # close of each hour = close of its last minute: minutes 59, 119, 179, 209 since the open
    assert half.get_column("close").to_list() == [59.0, 119.0, 179.0, 209.0]
    assert half.get_column("available_at").to_list() == [
        ny(day, 10, 30).astimezone(dt.UTC),
        ny(day, 11, 30).astimezone(dt.UTC),
        ny(day, 12, 30).astimezone(dt.UTC),
        ny(day, 13).astimezone(dt.UTC),
    ]
    daily = bars_at(tiny, "1d", sessions)
    assert daily.get_column("close").to_list() == [209.0, 209.0 + 390.0]
    assert daily.get_column("available_at").to_list() == [
        ny(dt.date(2024, 11, 29), 13).astimezone(dt.UTC),
        ny(dt.date(2024, 12, 2), 16).astimezone(dt.UTC),
    ]
    full_day = hourly.filter(pl.col("session") == dt.date(2024, 12, 2))
    assert full_day.get_column("available_at").to_list()[-1] == ny(
        dt.date(2024, 12, 2), 16
    ).astimezone(dt.UTC)
    assert full_day.get_column("close").to_list()[-1] == 209.0 + 390.0


def test_daily_value_is_invisible_until_the_close_incl_half_days(tiny: pl.DataFrame) -> None:
    half, monday = dt.date(2024, 11, 29), dt.date(2024, 12, 2)
    times = at(
        "AAA",
        ny(half, 12, 59, 59),
        ny(half, 13),
        ny(monday, 15, 59, 59),
        ny(monday, 16),
    )
    got = values_at(tiny, level(), ("1m", "1h", "1d"), session_frame(SESSIONS[2:]), times)
    # 12:59:59: the 12:58 minute is the last closed one; the 11:30 hour; no daily bar yet
    # 13:00 on the half day: its daily bar (and its 12:30-13:00 hour) just closed
    # 15:59:59 Monday: the daily value is still Friday's; the hour is 14:30-15:30 (its last
    # minute is minute 359 of the day = 209 + 1 + 359)
    assert got.get_column("value_1m").to_list() == [208.0, 209.0, 209.0 + 389.0, 209.0 + 390.0]
    assert got.get_column("value_1h").to_list() == [179.0, 209.0, 209.0 + 360.0, 209.0 + 390.0]
    assert got.get_column("value_1d").to_list() == [None, 209.0, 209.0, 209.0 + 390.0]


def test_bars_outside_regular_hours_are_ignored() -> None:
    bars = minute_path(3)
    minutes = bars_at(bars, "1m", session_frame()).join(session_frame(), on="session")
    assert (minutes.get_column("ts") >= minutes.get_column("open_right")).all()
    assert minutes.height == bars.height - 3 * len(SESSIONS) * len(SYMBOLS)


def test_hourly_bars_are_the_lakes_stock_bars_1h() -> None:
    """bars_at(.., "1h") on regular-hours minutes = the pipeline's resample_minutes (the code
    that writes stock_bars_1h), bar for bar; the daily bar's close is the session's last."""
    from alpaca_improved_pipelines.lake.resample import resample_minutes

    minutes = bars_at(minute_path(5), "1m", session_frame()).drop("available_at")
    lake_input = minutes.with_columns(
        trade_count=pl.lit(1, pl.Int64),
        source=pl.lit("synthetic"),
        adjustment=pl.lit("raw"),
        filled=pl.lit(False),
    )
    lake = resample_minutes(lake_input, "1h")
    ours = bars_at(minute_path(5), "1h", session_frame())
    cols = ["symbol", "ts", "session", "open", "high", "low", "close", "volume"]
    assert ours.select(cols).equals(lake.select(cols).sort("symbol", "ts"))
    np.testing.assert_allclose(
        ours.get_column("vwap").to_numpy(), lake.get_column("vwap").to_numpy(), atol=5e-5
    )
    daily = bars_at(minute_path(5), "1d", session_frame())
    last = minutes.group_by("symbol", "session").agg(pl.col("close").last())
    assert (
        daily.join(last, on=["symbol", "session"])
        .select((pl.col("close") == pl.col("close_right")).all())
        .item()
    )


def test_combine_rules_by_hand() -> None:
    frame = pl.DataFrame(
        {"vote_1m": [1, 1, -1, 0, -1], "vote_1h": [1, -1, -1, 1, -1], "vote_1d": [1, 1, -1, 1, 1]},
        schema={"vote_1m": pl.Int8, "vote_1h": pl.Int8, "vote_1d": pl.Int8},
    )
    tfs = ("1m", "1h", "1d")
    assert combine(frame, AllAgree(), tfs).to_list() == [1, 0, -1, 0, 0]
    weighted = WeightedVote({"1m": 0.2, "1h": 0.3, "1d": 0.5}, threshold=0.5)
    # sums: 1.0, 0.4, -1.0, 0.8, 0.0
    assert combine(frame, weighted, tfs).to_list() == [1, 0, -1, 1, 0]
    assert combine(frame, Gate("1m", "1d"), tfs).to_list() == [1, 1, -1, 0, 0]
    with pytest.raises(ValueError, match="vote_1w"):
        combine(frame, AllAgree(), ("1m", "1w"))


def test_bad_inputs_name_the_fix() -> None:
    with pytest.raises(ValueError, match="sessions is missing column"):
        bars_at(minute_path(1), "1h", session_frame().drop("close"))
    with pytest.raises(ValueError, match="timeframe must be one of"):
        bars_at(minute_path(1), "5h", session_frame())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="short_below"):
        Signal("x", lambda: pl.col("close"), 0.0, 1.0)


SIGNALS = [
    rsi_signal(3),
    roc_signal(2),
    trend_signal(3),
    vol_signal(3, calm_below=1e-3, wild_above=3e-3),
]
# a moment: a session and seconds from its open, from 30 min before it to 30 min after its close
# (so open, closes, half-day close and hour ends are all near the drawn times)
MOMENTS = st.tuples(st.integers(0, len(SESSIONS) - 1), st.integers(-1800, 7 * 3600))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**16),
    which=st.integers(0, len(SIGNALS) - 1),
    moments=st.lists(MOMENTS, min_size=1, max_size=4),
    whole_minutes=st.booleans(),
)
def test_a_value_at_t_never_changes_when_later_minutes_arrive(
    seed: int, which: int, moments: list[tuple[int, int]], whole_minutes: bool
) -> None:
    bars = minute_path(seed)
    signal = SIGNALS[which]
    sessions = session_frame()
    rules: list[Rule] = [
        AllAgree(),
        WeightedVote({"1m": 0.25, "1h": 0.25, "1d": 0.5}),
        Gate("1h", "1d"),
    ]
    rule = rules[seed % 3]
    for session, offset in moments:
        t = ny(SESSIONS[session][0], 9, 30) + dt.timedelta(
            seconds=offset - offset % 60 if whole_minutes else offset
        )
        times = pl.concat([at(s, t) for s in SYMBOLS])
        full = multi_timeframe(bars, signal, sessions, times, rule)
        known = bars.filter(pl.col("ts") + pl.duration(minutes=1) <= pl.lit(t.astimezone(dt.UTC)))
        past = multi_timeframe(known, signal, sessions, times, rule)
        assert full.columns == past.columns
        for col in full.columns:
            a, b = full.get_column(col), past.get_column(col)
            if a.dtype.is_float():
                assert a.is_null().to_list() == b.is_null().to_list(), (col, t)
                np.testing.assert_allclose(
                    a.fill_null(0.0).to_numpy(), b.fill_null(0.0).to_numpy(), rtol=1e-12, atol=0
                )
            else:
                assert a.to_list() == b.to_list(), (col, t)


def test_the_property_is_not_vacuous() -> None:
    """By the last session every timeframe carries a value (so the property compares numbers,
    not nulls), and the daily value is the last closed session's, not the forming one's."""
    bars = minute_path(7)
    t = ny(SESSIONS[-1][0], 11, 15)
    got = values_at(bars, roc_signal(1), ("1m", "1h", "1d"), session_frame(), at("AAA", t))
    assert got.select(pl.all().is_null().any()).row(0) == (False,) * got.width
    daily = bars_at(bars, "1d", session_frame()).filter(pl.col("symbol") == "AAA")
    forming = daily.filter(pl.col("session") == SESSIONS[-1][0])
    last_closed = daily.filter(pl.col("session") == SESSIONS[-2][0])
    assert forming.height == 1 and last_closed.height == 1
    roc = daily.get_column("close")
    assert got.get_column("value_1d").item() == pytest.approx(roc[-2] / roc[-3] - 1.0, rel=1e-12)
