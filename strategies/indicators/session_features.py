"""Session-level intraday features a daily strategy decides on, with one definition for
decisions and sweeps.

From one session's minute bars that closed by the decision (at the daily close: every regular-
hours bar of the session), per symbol and session, an :class:`IntradayFeatures`:

- ``bars``: the minute bars used (regular hours, closed by the cutoff);
- ``rv_intraday``: the session's realized volatility, ``sqrt(sum r_i^2)`` over the log returns
  between consecutive bars' closes (not annualized; NaN under 2 bars);
- ``vwap_distance``: last close over the session VWAP minus 1, the VWAP being
  ``sum(vwap_i * volume_i) / sum(volume_i)`` of the bars (a bar without a VWAP counts at its
  close); positive: the session closed above its volume-weighted average price (NaN without
  volume);
- ``last_hour_return``: last close over the close of the last bar closed by ``cutoff - 60 min``
  minus 1 (at a 16:00 close: the 15:00 price; NaN when no bar closed that early);
- ``orb_breakout``: the opening-range breakout, +1 when the last close is above the high of the
  first ``ORB_MINUTES`` minutes' bars, -1 below their low, 0 inside (NaN until the range is
  complete or when it has no bar).

Bars are assigned to sessions and regular hours exactly as the multi-timeframe signals do
(:func:`strategies.indicators.timeframes.bars_at`, half days close at 13:00), and a bar counts
from its close (``ts + 1 min <= cutoff``). :func:`intraday_feature_frame` computes every
session at once (what sweeps use); :func:`intraday_features_asof` one session from its bars cut
at the decision (what the live runner and the backtest put in
``MarketSnapshot.intraday_features``) by running the same frame function, so the two agree and a
session's features never change when later minutes or sessions are added (tests prove both).
A (symbol, session) without a single bar has no row: its features are NaN, never an older
session's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl

from strategies.indicators.timeframes import bars_at

ORB_MINUTES = 30
LAST_HOUR_MINUTES = 60
NAN = float("nan")


@dataclass(frozen=True, slots=True)
class IntradayFeatures:
    """Intraday features of one symbol on one session (NaN where unavailable).

    Attributes:
        symbol: The symbol.
        session: The session the features describe.
        bars: Minute bars the features were computed from.
        rv_intraday: Realized vol of the session's minute log returns (not annualized).
        vwap_distance: Last close / session VWAP - 1.
        last_hour_return: Last close / the close an hour before the cutoff - 1.
        orb_breakout: +1 above the opening range, -1 below it, 0 inside.
    """

    symbol: str
    session: date
    bars: int = 0
    rv_intraday: float = NAN
    vwap_distance: float = NAN
    last_hour_return: float = NAN
    orb_breakout: float = NAN


FEATURE_COLUMNS = tuple(f.name for f in fields(IntradayFeatures))
VALUE_COLUMNS = FEATURE_COLUMNS[3:]  # the float features
FEATURE_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "session": pl.Date(),
    "bars": pl.Int64(),
    **{c: pl.Float64() for c in VALUE_COLUMNS},
}


def _cutoffs(sessions: pl.DataFrame, dtype: pl.Datetime) -> pl.DataFrame:
    """``session, s_open, cutoff`` in the minute bars' time zone and unit (cutoff: the
    ``asof`` column when given, else the session's close)."""
    cut = "asof" if "asof" in sessions.columns else "close"

    def conv(col: str) -> pl.Expr:
        zoned = pl.col(col).dt.convert_time_zone(dtype.time_zone or "UTC")
        return zoned.dt.cast_time_unit(dtype.time_unit)

    return sessions.select(
        pl.col("session").cast(pl.Date), conv("open").alias("s_open"), conv(cut).alias("cutoff")
    )


def intraday_feature_frame(minute: pl.DataFrame, sessions: pl.DataFrame) -> pl.DataFrame:
    """Features of every (symbol, session) with at least one bar, in :data:`FEATURE_SCHEMA`.

    Args:
        minute: Minute bars (``symbol, ts`` = bar start (tz-aware), ``open, high, low, close,
            volume``, optionally ``vwap``); bars outside a listed session's hours are ignored.
        sessions: One row per session: ``session`` (Date), ``open``, ``close`` (tz-aware, from
            the exchange calendar) and optionally ``asof`` (tz-aware): the decision time, which
            defaults to the close (a daily decision).

    Returns:
        One row per (symbol, session) with a bar closed by its cutoff, sorted.
    """
    if "vwap" not in minute.columns:
        minute = minute.with_columns(pl.lit(None, pl.Float64).alias("vwap"))
    bars = bars_at(minute, "1m", sessions.select("session", "open", "close"))
    dtype = bars.schema["available_at"]
    assert isinstance(dtype, pl.Datetime)
    bars = (
        bars.join(_cutoffs(sessions, dtype), on="session")
        .filter(pl.col("available_at") <= pl.col("cutoff"))
        .sort("symbol", "session", "ts")
    )
    close = pl.col("close").cast(pl.Float64)
    volume = pl.col("volume").cast(pl.Float64)
    vwap = pl.col("vwap").cast(pl.Float64).fill_nan(None).fill_null(close)
    hour_ago = pl.col("cutoff").first() - pl.duration(minutes=LAST_HOUR_MINUTES)
    orb_end = pl.col("s_open").first() + pl.duration(minutes=ORB_MINUTES)
    in_range = pl.col("ts") < orb_end
    orb_high = pl.col("high").cast(pl.Float64).filter(in_range).max()
    orb_low = pl.col("low").cast(pl.Float64).filter(in_range).min()
    last = close.last()
    n = pl.len().cast(pl.Int64)
    frame = bars.group_by("symbol", "session", maintain_order=True).agg(
        n.alias("bars"),
        pl.when(n >= 2)
        .then(close.log().diff().pow(2).sum().sqrt())
        .otherwise(None)
        .alias("rv_intraday"),
        pl.when(volume.sum() > 0)
        .then(last / ((vwap * volume).sum() / volume.sum()) - 1.0)
        .otherwise(None)
        .alias("vwap_distance"),
        (last / close.filter(pl.col("available_at") <= hour_ago).last() - 1.0).alias(
            "last_hour_return"
        ),
        pl.when((pl.col("cutoff").first() >= orb_end) & orb_high.is_not_null())
        .then(pl.when(last > orb_high).then(1.0).when(last < orb_low).then(-1.0).otherwise(0.0))
        .otherwise(None)
        .alias("orb_breakout"),
    )
    frame = frame.with_columns(pl.col(VALUE_COLUMNS).cast(pl.Float64).fill_null(NAN))
    return frame.select(list(FEATURE_SCHEMA)).cast(FEATURE_SCHEMA).sort("symbol", "session")  # type: ignore[arg-type]


def intraday_features_asof(
    session: date,
    minute: pl.DataFrame | None,
    session_open: datetime,
    session_close: datetime,
    asof: datetime | None = None,
) -> dict[str, IntradayFeatures]:
    """Features of each symbol on ``session`` from the bars closed by ``asof`` (default: the
    session's close; the snapshot's form). A symbol without a bar has no entry."""
    if minute is None or minute.is_empty():
        return {}
    one = pl.DataFrame(
        {
            "session": [session],
            "open": [session_open],
            "close": [session_close],
            "asof": [asof or session_close],
        }
    )
    frame = intraday_feature_frame(minute, one)
    return features_by_session(frame).get(session, {})


def features_by_session(frame: pl.DataFrame) -> dict[date, dict[str, IntradayFeatures]]:
    """A feature frame as ``{session: {symbol: IntradayFeatures}}`` (a stepped backtest's
    per-session lookup)."""
    out: dict[date, dict[str, IntradayFeatures]] = {}
    for row in frame.select(FEATURE_COLUMNS).iter_rows(named=True):
        out.setdefault(row["session"], {})[row["symbol"]] = IntradayFeatures(**row)
    return out


@dataclass(frozen=True)
class IntradayFeatureMatrix:
    """Features laid on a daily grid: ``values[name]`` has shape ``(sessions, symbols)``, NaN
    where a (session, symbol) had no minute bar (the sweeps' vectorized form)."""

    sessions: tuple[date, ...]
    symbols: tuple[str, ...]
    values: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, sessions: Any, symbols: Any) -> IntradayFeatureMatrix:
        """Lay a :func:`intraday_feature_frame` on ``sessions`` x ``symbols``."""
        sessions, symbols = tuple(sessions), tuple(symbols)
        row = {s: i for i, s in enumerate(sessions)}
        col = {s: j for j, s in enumerate(symbols)}
        keep = frame.filter(
            pl.col("session").is_in(list(sessions)) & pl.col("symbol").is_in(list(symbols))
        )
        r = np.array([row[s] for s in keep.get_column("session").to_list()], dtype=np.int64)
        c = np.array([col[s] for s in keep.get_column("symbol").to_list()], dtype=np.int64)
        values = {}
        for name in VALUE_COLUMNS:
            arr = np.full((len(sessions), len(symbols)), np.nan)
            arr[r, c] = keep.get_column(name).to_numpy()
            values[name] = arr
        return cls(sessions, symbols, values)

    def columns(self, idx: list[int]) -> IntradayFeatureMatrix:
        """The matrix restricted to symbol columns ``idx`` (in that order)."""
        return IntradayFeatureMatrix(
            self.sessions,
            tuple(self.symbols[j] for j in idx),
            {k: np.ascontiguousarray(v[:, idx]) for k, v in self.values.items()},
        )


__all__ = [
    "FEATURE_COLUMNS",
    "FEATURE_SCHEMA",
    "LAST_HOUR_MINUTES",
    "ORB_MINUTES",
    "IntradayFeatureMatrix",
    "IntradayFeatures",
    "features_by_session",
    "intraday_feature_frame",
    "intraday_features_asof",
]
