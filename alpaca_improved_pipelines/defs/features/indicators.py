"""The work behind ``indicators_1d``: fixed-lookback daily indicators plus intraday features."""

from __future__ import annotations

import datetime as dt

import polars as pl

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.errors import LakeError
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.resources.lake import LakeResource
from strategies.indicators import IndicatorConfig, add_indicators

# Each session's indicators use exactly the LOOKBACK sessions ending at it (fewer at the start of
# the partition set), so a session's row is the same whether computed alone or in a backfill.
LOOKBACK = 260
CONFIG = IndicatorConfig(
    sma_windows=(20, 50),
    ema_windows=(12, 26),
    rsi_windows=(14,),
    bb_windows=(20,),
    atr_windows=(14,),
    rv_windows=(20,),
)
MINUTES_PER_YEAR = 252.0 * 390.0


def history_sessions(session: dt.date, first_partition: dt.date) -> list[dt.date]:
    """The lookback window of ``session``: at most LOOKBACK sessions, none before partitions."""
    window = cal.sessions_between(max(first_partition, cal.CALENDAR_START), session)
    return window[-LOOKBACK:]


def _read_history(lake: LakeResource, sessions: list[dt.date]) -> pl.DataFrame:
    missing = [s for s in sessions if not lake.has("stock_bars_1d", s)]
    if missing:
        raise LakeError(
            f"indicators need stock_bars_1d for {len(missing)} earlier session(s), first "
            f"{missing[0].isoformat()}; backfill stock_bars_1d from {missing[0].isoformat()} first"
        )
    return lake.read("stock_bars_1d", sessions, BAR_SCHEMA)


def intraday_features(minute: pl.DataFrame) -> pl.DataFrame:
    """Daily features from 1-minute bars: annualized intraday realized vol and minute count."""
    return (
        minute.sort("symbol", "ts")
        .with_columns((pl.col("close") / pl.col("close").shift(1)).log().over("symbol").alias("r"))
        .group_by("symbol", "session")
        .agg(
            (pl.col("r").std(ddof=1) * MINUTES_PER_YEAR**0.5).alias("rv_intraday"),
            pl.len().cast(pl.Int64).alias("minute_bars"),
        )
    )


def indicators_for(
    lake: LakeResource,
    sessions: list[dt.date],
    first_partition: dt.date,
    universe: tuple[str, ...] | None = None,
) -> dict[dt.date, pl.DataFrame]:
    """The indicator rows of each of ``sessions`` for every symbol (of ``universe``, if given).

    History is read once for the whole run; each session is computed on its own fixed window.
    Restricting to the universe keeps symbols dropped from it (whose history may have been
    replaced) out of the rows.
    """
    needed = sorted({h for s in sessions for h in history_sessions(s, first_partition)})
    daily = _read_history(lake, needed).sort("symbol", "ts")
    if universe is not None:
        daily = daily.filter(pl.col("symbol").is_in(list(universe)))
    cols = ["symbol", "ts", "session", "close", *CONFIG.columns()]
    out: dict[dt.date, pl.DataFrame] = {}
    for session in sessions:
        window = history_sessions(session, first_partition)
        part = daily.filter(pl.col("session").is_between(window[0], session))
        rows = add_indicators(part, CONFIG).filter(pl.col("session") == session).select(cols)
        if lake.has("stock_bars_1m", session):
            minute = lake.read("stock_bars_1m", [session], BAR_SCHEMA)
            rows = rows.join(intraday_features(minute), on=["symbol", "session"], how="left")
        else:
            rows = rows.with_columns(
                pl.lit(None, pl.Float64).alias("rv_intraday"),
                pl.lit(None, pl.Int64).alias("minute_bars"),
            )
        out[session] = rows.sort("symbol")
    return out
