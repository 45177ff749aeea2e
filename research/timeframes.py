"""Multi-timeframe signals on the lake: the lake's minute bars and the NYSE calendar's session
bounds fed to :mod:`strategies.indicators.timeframes` (which reads neither).

    >>> from research.timeframes import lake_multi_timeframe
    >>> from strategies.indicators.timeframes import Gate, trend_signal
    >>> frame = lake_multi_timeframe(home, ["SPY"], start, end, trend_signal(20), times,
    ...                              Gate("1h", "1d"))

The minute bars come from ``stock_bars_1m`` through the read-only DuckDB views of
:mod:`research.lakehouse`; hourly and daily bars are resampled from them exactly as the lake's
``stock_bars_1h`` is (tests/research/test_lake_timeframes.py checks it against that table).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from contracts.calendar import session_open_close, sessions_between
from contracts.errors import ContractError
from strategies.indicators.session_features import intraday_feature_frame
from strategies.indicators.timeframes import (
    TIMEFRAMES,
    Rule,
    Signal,
    TimeframeName,
    multi_timeframe,
)

_MINUTE_COLUMNS = ("symbol", "session", "ts", "open", "high", "low", "close", "volume", "vwap")


class LakeTimeframeError(ContractError):
    """The lake cannot serve the minute bars a multi-timeframe signal needs."""


def session_bounds(sessions: Iterable[dt.date]) -> pl.DataFrame:
    """``session, open, close`` (UTC) of each session from the NYSE calendar (early closes
    respected): the ``sessions`` input of :mod:`strategies.indicators.timeframes`."""
    days = sorted(set(sessions))
    bounds = [session_open_close(d) for d in days]
    return pl.DataFrame(
        {
            "session": days,
            "open": [o.to_pydatetime() for o, _ in bounds],
            "close": [c.to_pydatetime() for _, c in bounds],
        },
        schema={
            "session": pl.Date,
            "open": pl.Datetime("us", "UTC"),
            "close": pl.Datetime("us", "UTC"),
        },
    )


def lake_minutes(
    home: Path | str, symbols: Sequence[str], start: dt.date, end: dt.date
) -> pl.DataFrame:
    """``stock_bars_1m`` of ``symbols`` for the sessions ``[start, end]``, sorted by symbol, ts.

    Raises:
        LakeTimeframeError: the lake has no ``stock_bars_1m`` partitions, or none of the
            symbols has minute bars in the range.
    """
    from research import lakehouse

    with lakehouse.connect(home, warn=False) as con:
        if "stock_bars_1m" not in con.views:
            raise LakeTimeframeError(
                f"the lake under {home} has no stock_bars_1m partitions; materialize "
                "stock_bars_1m (Dagster UI or `alpaca-improved backfill`) first"
            )
        frame = con.sql(
            f"SELECT {', '.join(_MINUTE_COLUMNS)} FROM stock_bars_1m "
            "WHERE list_contains($symbols, symbol) AND session BETWEEN $start AND $end "
            "ORDER BY symbol, ts",
            params={"symbols": list(symbols), "start": start, "end": end},
        ).pl()
    if frame.height == 0:
        raise LakeTimeframeError(
            f"no stock_bars_1m bars for {list(symbols)} between {start} and {end}; backfill "
            "those sessions or choose others"
        )
    return frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))


def lake_multi_timeframe(
    home: Path | str,
    symbols: Sequence[str],
    start: dt.date,
    end: dt.date,
    signal: Signal,
    times: pl.DataFrame,
    rule: Rule,
    timeframes: Sequence[TimeframeName] = TIMEFRAMES,
) -> pl.DataFrame:
    """:func:`~strategies.indicators.timeframes.multi_timeframe` over the lake's minute bars of
    sessions ``[start, end]`` at the ``(symbol, t)`` rows of ``times``."""
    minutes = lake_minutes(home, symbols, start, end)
    sessions = session_bounds(sessions_between(start, end))
    return multi_timeframe(minutes, signal, sessions, times, rule, timeframes)


def lake_intraday_features(
    home: Path | str, symbols: Sequence[str], start: dt.date, end: dt.date
) -> pl.DataFrame:
    """Session-level intraday features
    (:func:`~strategies.indicators.session_features.intraday_feature_frame`) of ``symbols``
    for the sessions ``[start, end]`` from the lake's minute bars: what a stepped run of a
    daily strategy gating on them hands its snapshots (e.g. ``run_decide(...,
    intraday_features=...)``); a (symbol, session) without minute bars has no row."""
    minutes = lake_minutes(home, symbols, start, end)
    return intraday_feature_frame(minutes, session_bounds(sessions_between(start, end)))


__all__ = [
    "LakeTimeframeError",
    "lake_intraday_features",
    "lake_minutes",
    "lake_multi_timeframe",
    "session_bounds",
]
