"""Multi-timeframe signals: one signal definition computed on minute, hourly and daily bars,
read as of a time ``t`` without look-ahead, and combined across timeframes by an explicit rule.

Bars. Hourly and daily bars are built from minute bars exactly as the lake builds
``stock_bars_1h`` / ``stock_bars_1d`` (the aggregations of
:func:`~strategies.indicators.resample.resample_bars`; hourly windows counted from the session's
open, 09:30-10:30 ... 15:30-16:00, 12:30-13:00 on a half day, like ``stock_bars_1h``; one daily
bar per session), restricted to each session's regular hours. ``ts`` stays the bar's start
(the lake's stamp); each bar also gets ``available_at``, the moment it is complete:

- ``1m``: ``ts + 1 minute``;
- ``1h``: the end of its hour, or the session's close if that is earlier;
- ``1d``: the session's close (16:00 New York, 13:00 on a half day).

The session bounds come in as data (``session, open, close``; tz-aware), so this module reads no
calendar and no clock: the caller takes them from the exchange calendar (``contracts.calendar``)
or ``MarketSnapshot.features["session_open"/"session_close"]``.

As-of rule. The value of a timeframe at time ``t`` is the signal on its last bar with
``available_at <= t``: a coarser bar is usable only from its close, never while it is forming.
With "the data up to ``t``" meaning the minute bars closed by ``t`` (``ts + 1 min <= t``), every
value at ``t`` is then a function of that data alone; ``tests/strategies/test_timeframes.py``
proves it by property (adding later minutes never changes a value at ``t``).

Combining. Each timeframe's value becomes a vote (+1 long, -1 short, 0 neither or not yet
defined) by the signal's thresholds; :func:`combine` merges the votes by :class:`AllAgree`,
:class:`WeightedVote` or :class:`Gate` (the fine timeframe's vote only where the coarse regime
votes the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from strategies.indicators.moving import sma
from strategies.indicators.oscillators import realized_vol, rsi
from strategies.indicators.resample import resample_bars

TimeframeName = Literal["1m", "1h", "1d"]
TIMEFRAMES: tuple[TimeframeName, ...] = ("1m", "1h", "1d")
_SESSION_COLUMNS = ("session", "open", "close")


@dataclass(frozen=True, slots=True)
class Signal:
    """A signal: a per-symbol polars expression over a bar frame, and its vote thresholds.

    Attributes:
        name: Name of the value column.
        expr: Builds the expression (rows sorted by ``symbol, ts``; partitioned per symbol, row
            ``r`` reading rows ``<= r`` only, like every indicator of this package).
        long_above: Vote +1 where the value is above this.
        short_below: Vote -1 where the value is below this (<= ``long_above``).
    """

    name: str
    expr: Callable[[], pl.Expr]
    long_above: float
    short_below: float

    def __post_init__(self) -> None:
        if not self.short_below <= self.long_above:
            raise ValueError(
                f"signal {self.name!r}: short_below {self.short_below} must be <= "
                f"long_above {self.long_above}"
            )


def rsi_signal(n: int = 14, *, long_above: float = 50.0, short_below: float = 50.0) -> Signal:
    """RSI(n) of the close (momentum reading: long above 50, short below)."""
    return Signal(f"rsi_{n}", lambda: rsi("close", n), long_above, short_below)


def roc_signal(n: int = 10) -> Signal:
    """Rate of change over ``n`` bars, ``close / close[n bars ago] - 1`` (long > 0, short < 0)."""
    if n < 1:
        raise ValueError(f"roc n must be an integer >= 1, got {n}")
    return Signal(
        f"roc_{n}",
        lambda: (pl.col("close") / pl.col("close").shift(n) - 1.0).over("symbol"),
        0.0,
        0.0,
    )


def trend_signal(n: int = 20) -> Signal:
    """Close relative to its SMA(n), ``close / sma - 1`` (long > 0, short < 0)."""
    return Signal(f"trend_{n}", lambda: pl.col("close") / sma("close", n) - 1.0, 0.0, 0.0)


def vol_signal(n: int = 20, *, calm_below: float, wild_above: float) -> Signal:
    """Realized vol of ``n`` log returns (per bar, not annualized): a calm regime (below
    ``calm_below``) votes +1, a wild one (above ``wild_above``) -1."""
    # negated so that "calm" is the high side of the vote
    return Signal(
        f"calm_{n}",
        lambda: -realized_vol("close", n, periods_per_year=1.0),
        -calm_below,
        -wild_above,
    )


def _check_sessions(sessions: pl.DataFrame) -> None:
    missing = [c for c in _SESSION_COLUMNS if c not in sessions.columns]
    if missing:
        raise ValueError(
            f"sessions is missing column(s) {missing}: pass session (Date), open and close "
            "(tz-aware Datetime) per session, from the exchange calendar"
        )
    for col in ("open", "close"):
        dtype = sessions.schema[col]
        if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
            raise ValueError(f"sessions.{col} must be a tz-aware Datetime, got {dtype}")


def bars_at(minute: pl.DataFrame, timeframe: TimeframeName, sessions: pl.DataFrame) -> pl.DataFrame:
    """Regular-hours bars of ``timeframe`` from minute bars, with ``available_at``.

    Args:
        minute: Minute bars (``symbol, ts`` = bar start (tz-aware), ``open, high, low, close,
            volume``, optionally ``vwap``); bars outside a listed session's hours are dropped.
        timeframe: ``"1m"``, ``"1h"`` or ``"1d"``.
        sessions: One row per session: ``session`` (Date), ``open``, ``close`` (tz-aware).

    Returns:
        Bars sorted by ``symbol, ts`` with ``session`` and ``available_at`` (the bar's close).
    """
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"timeframe must be one of {TIMEFRAMES}, got {timeframe!r}")
    _check_sessions(sessions)
    unit = minute.schema["ts"]
    if not isinstance(unit, pl.Datetime) or unit.time_zone is None:
        raise ValueError(f"minute bars' ts must be a tz-aware Datetime, got {unit}")
    bounds = sessions.select(
        pl.col("session").cast(pl.Date),
        *(
            pl.col(c)
            .dt.convert_time_zone(unit.time_zone)
            .dt.cast_time_unit(unit.time_unit)
            .alias(f"session_{c}")
            for c in ("open", "close")
        ),
    ).sort("session_open")
    inside = (
        minute.drop("session", strict=False)
        .sort("ts")
        .join_asof(bounds, left_on="ts", right_on="session_open", strategy="backward")
        .filter(pl.col("ts") < pl.col("session_close"))
    )
    if timeframe == "1m":
        out = inside.with_columns(available_at=pl.col("ts") + pl.duration(minutes=1))
    elif timeframe == "1d":
        out = resample_bars(
            inside.drop("session_open", "session_close"), "1d", by_session=True
        ).join(bounds, on="session")
        out = out.with_columns(available_at=pl.col("session_close"))
    else:
        # Hours counted from the session's open (09:30-10:30, ..., 15:30-16:00; 12:30-13:00 on
        # a half day), as the lake's stock_bars_1h: shift each minute back by the open's offset
        # past the clock hour, aggregate clock hours, shift the stamps forward again.
        offset = pl.col("session_open") - pl.col("session_open").dt.truncate("1h")
        shifted = inside.with_columns(pl.col("ts") - offset).drop("session_open", "session_close")
        out = (
            resample_bars(shifted, "1h", by_session=True)
            .join(bounds, on="session")
            .with_columns(pl.col("ts") + offset)
        )
        ends = pl.min_horizontal(pl.col("ts") + pl.duration(hours=1), pl.col("session_close"))
        out = out.with_columns(available_at=ends)
    return (
        out.drop("session_open", "session_close")
        .with_columns(pl.col("available_at").dt.cast_time_unit(unit.time_unit))
        .sort("symbol", "ts")
    )


def signal_frame(
    minute: pl.DataFrame, signal: Signal, timeframe: TimeframeName, sessions: pl.DataFrame
) -> pl.DataFrame:
    """``symbol, ts, available_at, <signal.name>`` of ``signal`` on ``timeframe`` bars."""
    bars = bars_at(minute, timeframe, sessions)
    return (
        bars.lazy()
        .select("symbol", "ts", "available_at", signal.expr().alias(signal.name))
        .collect()
    )


def vote(value: pl.Expr, signal: Signal) -> pl.Expr:
    """+1 above ``long_above``, -1 below ``short_below``, else 0 (also for null/NaN)."""
    return (
        pl.when(value > signal.long_above)
        .then(1)
        .when(value < signal.short_below)
        .then(-1)
        .otherwise(0)
        .cast(pl.Int8)
    )


def values_at(
    minute: pl.DataFrame,
    signal: Signal,
    timeframes: Sequence[TimeframeName],
    sessions: pl.DataFrame,
    times: pl.DataFrame,
) -> pl.DataFrame:
    """Each timeframe's signal value and vote at each ``(symbol, t)`` of ``times``.

    A timeframe's value at ``t`` is the signal on its last bar with ``available_at <= t``
    (null before its first closed bar or during warm-up).

    Returns:
        ``times`` (sorted by ``symbol, t``) with ``value_<tf>`` and ``vote_<tf>`` per timeframe.
    """
    if not timeframes:
        raise ValueError("timeframes must name at least one of '1m', '1h', '1d'")
    if "t" not in times.columns or "symbol" not in times.columns:
        raise ValueError("times must have columns symbol and t (tz-aware Datetime)")
    t_dtype = times.schema["t"]
    unit = minute.schema["ts"]
    assert isinstance(unit, pl.Datetime)
    if not isinstance(t_dtype, pl.Datetime) or t_dtype.time_zone is None:
        raise ValueError(f"times.t must be a tz-aware Datetime, got {t_dtype}")
    out = times.with_columns(
        pl.col("t").dt.convert_time_zone(unit.time_zone or "UTC").dt.cast_time_unit(unit.time_unit)
    ).sort("t")
    for tf in timeframes:
        frame = (
            signal_frame(minute, signal, tf, sessions)
            .select("symbol", "available_at", pl.col(signal.name).alias(f"value_{tf}"))
            .sort("available_at")
        )
        out = out.join_asof(
            frame,
            left_on="t",
            right_on="available_at",
            by="symbol",
            strategy="backward",
            check_sortedness=False,  # both sides are sorted by time above
        ).drop("available_at")
        out = out.with_columns(vote(pl.col(f"value_{tf}"), signal).alias(f"vote_{tf}"))
    return out.sort("symbol", "t")


@dataclass(frozen=True, slots=True)
class AllAgree:
    """+1 (-1) where every timeframe votes +1 (-1), else 0."""


@dataclass(frozen=True, slots=True)
class WeightedVote:
    """``sign`` of the weighted vote sum once its magnitude reaches ``threshold``, else 0.

    Attributes:
        weights: Weight per timeframe (timeframes not listed weigh 0).
        threshold: Minimum ``|sum of weight * vote|`` for a non-zero result (> 0).
    """

    weights: Mapping[str, float] = field(default_factory=dict)
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValueError(f"WeightedVote threshold must be > 0, got {self.threshold}")


@dataclass(frozen=True, slots=True)
class Gate:
    """The ``fine`` timeframe's vote where the ``coarse`` timeframe votes the same way, else 0."""

    fine: TimeframeName = "1m"
    coarse: TimeframeName = "1d"


Rule = AllAgree | WeightedVote | Gate


def combine(frame: pl.DataFrame, rule: Rule, timeframes: Sequence[str]) -> pl.Series:
    """The combined vote (Int8: +1, -1, 0) of the ``vote_<tf>`` columns of ``frame``."""
    missing = [f"vote_{tf}" for tf in timeframes if f"vote_{tf}" not in frame.columns]
    if isinstance(rule, Gate):
        missing += [
            f"vote_{tf}" for tf in (rule.fine, rule.coarse) if f"vote_{tf}" not in frame.columns
        ]
    if missing:
        raise ValueError(f"combine: frame lacks {sorted(set(missing))}; compute values_at first")
    votes = [pl.col(f"vote_{tf}").cast(pl.Int32) for tf in timeframes]
    if isinstance(rule, AllAgree):
        expr = (
            pl.when(pl.all_horizontal([v == 1 for v in votes]))
            .then(1)
            .when(pl.all_horizontal([v == -1 for v in votes]))
            .then(-1)
            .otherwise(0)
        )
    elif isinstance(rule, WeightedVote):
        total = pl.sum_horizontal(
            [v * float(rule.weights.get(tf, 0.0)) for v, tf in zip(votes, timeframes, strict=True)]
        )
        expr = (
            pl.when(total >= rule.threshold)
            .then(1)
            .when(total <= -rule.threshold)
            .then(-1)
            .otherwise(0)
        )
    else:
        fine, coarse = pl.col(f"vote_{rule.fine}"), pl.col(f"vote_{rule.coarse}")
        expr = pl.when(fine == coarse).then(fine).otherwise(0)
    return frame.select(expr.cast(pl.Int8).alias("combined")).to_series()


def multi_timeframe(
    minute: pl.DataFrame,
    signal: Signal,
    sessions: pl.DataFrame,
    times: pl.DataFrame,
    rule: Rule,
    timeframes: Sequence[TimeframeName] = TIMEFRAMES,
) -> pl.DataFrame:
    """:func:`values_at` plus the ``combined`` vote of ``rule`` at each ``(symbol, t)``."""
    frame = values_at(minute, signal, timeframes, sessions, times)
    return frame.with_columns(combine(frame, rule, timeframes))


__all__ = [
    "TIMEFRAMES",
    "AllAgree",
    "Gate",
    "Rule",
    "Signal",
    "WeightedVote",
    "bars_at",
    "combine",
    "multi_timeframe",
    "roc_signal",
    "rsi_signal",
    "signal_frame",
    "trend_signal",
    "values_at",
    "vol_signal",
    "vote",
]
