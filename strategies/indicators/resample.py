"""Resampling bars to a coarser timeframe, per symbol (and per trading session)."""

from __future__ import annotations

import re

import polars as pl

MARKET_TZ = "America/New_York"
_EVERY = re.compile(r"^([1-9][0-9]*)(m|h|d)$")
_REQUIRED = ("symbol", "ts", "open", "high", "low", "close", "volume")


def _check_every(every: str) -> None:
    match = _EVERY.match(every) if isinstance(every, str) else None
    if match is None or (match.group(2) == "d" and match.group(1) != "1"):
        raise ValueError(
            f"every must be minutes ('5m'), hours ('1h') or one day ('1d'), got {every!r}"
        )


def _check_bars(df: pl.DataFrame) -> None:
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"resample_bars: bars are missing column(s) {missing}")
    dtype = df.schema["ts"]
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
        raise ValueError(f"resample_bars: ts must be a timezone-aware Datetime (UTC), got {dtype}")


def _session_expr(df: pl.DataFrame) -> pl.Expr:
    if "session" in df.columns:
        return pl.col("session").cast(pl.Date)
    # A session is the New York calendar date of the bar (pre-market through after-hours).
    return pl.col("ts").dt.convert_time_zone(MARKET_TZ).dt.date().alias("session")


def _aggregations(df: pl.DataFrame) -> list[pl.Expr]:
    vol = pl.col("volume")
    # Volume-weight each bar's own VWAP when the source gives one, else its typical price.
    price = (
        pl.col("vwap")
        if "vwap" in df.columns
        else (pl.col("high") + pl.col("low") + pl.col("close")) / 3.0
    )
    total = vol.cast(pl.Float64).sum()
    aggs = [
        pl.col("open").first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").last(),
        vol.sum(),
        # A window without volume has no VWAP: null rather than NaN.
        pl.when(total > 0).then((price * vol.cast(pl.Float64)).sum() / total).alias("vwap"),
    ]
    if "trade_count" in df.columns:
        aggs.append(pl.col("trade_count").sum())
    return aggs


def resample_bars(df: pl.DataFrame, every: str = "1d", *, by_session: bool = True) -> pl.DataFrame:
    """Aggregate bars (typically minute bars) into coarser bars per symbol.

    ``open`` = first, ``high`` = max, ``low`` = min, ``close`` = last, ``volume`` = sum,
    ``vwap`` = volume-weighted mean of the input ``vwap`` (of the typical price
    ``(high + low + close) / 3`` when the input has no ``vwap``; null for zero volume),
    ``trade_count`` = sum (only when the input has it). Bars are stamped with the start of
    their window, like Alpaca's.

    Intraday windows (``"5m"``, ``"1h"``) are aligned to clock boundaries in UTC (which are also
    New York clock boundaries for minutes and hours). ``"1d"`` with ``by_session`` groups by the
    ``session`` column when present, else by the New York date of ``ts``, and stamps the bar at
    midnight New York of that session expressed in UTC (the provider convention for daily
    bars); without ``by_session`` it groups by UTC calendar day. With ``by_session`` the output
    keeps a ``session`` column and no intraday window spans two sessions.

    Args:
        df: Bars with ``symbol``, ``ts`` (tz-aware Datetime), ``open, high, low, close,
            volume`` and optionally ``vwap``, ``trade_count``, ``session`` (Date). Row order
            does not matter.
        every: ``"<k>m"``, ``"<k>h"`` or ``"1d"``.
        by_session: Group by trading session (see above).

    Returns:
        Bars sorted by ``symbol``, ``ts``: ``symbol, ts, [session,] open, high, low, close,
        volume, vwap[, trade_count]``.

    Raises:
        ValueError: If ``every`` is malformed, a required column is missing, or ``ts`` is not
            timezone-aware.
    """
    _check_every(every)
    _check_bars(df)
    ts_dtype = df.schema["ts"]
    assert isinstance(ts_dtype, pl.Datetime) and ts_dtype.time_zone is not None  # _check_bars
    keys: list[pl.Expr] = [pl.col("symbol")]
    if by_session:
        keys.append(_session_expr(df))
    if every != "1d":
        keys.append(pl.col("ts").dt.truncate(every))
    elif not by_session:
        keys.append(pl.col("ts").dt.truncate("1d"))
    out = df.lazy().sort("symbol", "ts").group_by(keys, maintain_order=True).agg(_aggregations(df))
    if every == "1d" and by_session:
        midnight = pl.col("session").cast(pl.Datetime(ts_dtype.time_unit))
        ts = midnight.dt.replace_time_zone(MARKET_TZ).dt.convert_time_zone(ts_dtype.time_zone)
        out = out.with_columns(ts.alias("ts"))
    lead = ["symbol", "ts", "session"] if by_session else ["symbol", "ts"]
    return out.select(*lead, pl.exclude(lead)).sort("symbol", "ts").collect()


def daily_from_minute(minute_df: pl.DataFrame) -> pl.DataFrame:
    """Daily bars from minute bars, one per symbol and session (``resample_bars(..., "1d")``).

    Feed the result to ``add_indicators`` for daily indicators next to intraday ones.

    Args:
        minute_df: Minute bars (see ``resample_bars``).

    Returns:
        Daily bars stamped at midnight New York of each session, in UTC.
    """
    return resample_bars(minute_df, "1d", by_session=True)
