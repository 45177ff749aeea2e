"""Backtrader data feeds over the lake: one ``bt.feeds.PandasData`` per symbol and timeframe.

    >>> from research.backtrader_feed import lake_feeds
    >>> cerebro = bt.Cerebro()
    >>> for feed in lake_feeds(home, ["SPY", "AAPL"], "1h"):
    ...     cerebro.adddata(feed)                       # feed._name == "SPY", ...

The bars come from the lake's bar tables (``stock_bars_1d``, ``stock_bars_1h``, ``stock_bars_5m``,
``stock_bars_1m``) through the read-only DuckDB views of :mod:`research.lakehouse`, so a
backtrader run reads exactly the files every other reader reads and can never write the lake.
Each feed is a ``PandasData`` with two more lines, ``vwap`` and ``trade_count``.

Timestamps are exchange time (naive ``America/New_York``, as backtrader expects):

- daily bars are stamped at their session date (midnight), so ``data.datetime.date(0)`` is the
  session, the key our orders and the vectorbt reference use;
- intraday bars are stamped at their *close* (the lake's ``ts`` is the bar's start, UTC):
  backtrader's own convention, the time at which the bar is complete and a strategy may act on
  it (its resampler stamps at the right edge too).

backtrader is an optional dependency: it is imported only when a feed is built, and a missing
install raises one :class:`ImportError` naming the extra to install.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from contracts.calendar import session_open_close
from contracts.errors import ContractError
from strategies.models import NEW_YORK

INSTALL_HINT = (
    "backtrader is not installed; install the optional extra: "
    "pip install 'alpaca-improved[backtrader]' (or: uv sync --extra backtrader)"
)


class LakeFeedError(ContractError):
    """A feed cannot be built from the lake (unknown timeframe, symbol without bars...)."""


@dataclass(frozen=True, slots=True)
class BarTimeframe:
    """One lake bar table as backtrader sees it.

    Attributes:
        table: The lake table.
        minutes: Bar length in minutes (0 for daily bars).
        bt_timeframe: The ``bt.TimeFrame`` attribute name (``Days`` or ``Minutes``).
        compression: backtrader's compression (bars of the base unit per bar).
    """

    table: str
    minutes: int
    bt_timeframe: str
    compression: int


TIMEFRAMES: dict[str, BarTimeframe] = {
    "1d": BarTimeframe("stock_bars_1d", 0, "Days", 1),
    "1h": BarTimeframe("stock_bars_1h", 60, "Minutes", 60),
    "5m": BarTimeframe("stock_bars_5m", 5, "Minutes", 5),
    "1m": BarTimeframe("stock_bars_1m", 1, "Minutes", 1),
}
FEED_COLUMNS = ("open", "high", "low", "close", "volume", "vwap", "trade_count")
_FEED_CLASS: type | None = None


def import_backtrader() -> Any:
    """The ``backtrader`` module, or one ImportError saying which extra to install."""
    try:
        import backtrader
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return backtrader


def timeframe_of(timeframe: str) -> BarTimeframe:
    """The :class:`BarTimeframe` of ``"1d"``, ``"1h"``, ``"5m"`` or ``"1m"``."""
    try:
        return TIMEFRAMES[timeframe]
    except KeyError:
        raise LakeFeedError(
            f"timeframe {timeframe!r} has no lake bar table; use one of {sorted(TIMEFRAMES)}"
        ) from None


def read_bars(
    home: Path | str,
    symbols: Iterable[str],
    timeframe: str = "1d",
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> dict[str, pd.DataFrame]:
    """Each symbol's bars of ``timeframe`` in ``[start, end]`` (sessions), as a pandas frame
    indexed by the exchange-time stamp described in the module docstring, in time order.

    Raises:
        LakeFeedError: the table has no partitions, or a symbol has no bars in the range.
    """
    from research import lakehouse

    spec = timeframe_of(timeframe)
    wanted = list(dict.fromkeys(symbols))
    with lakehouse.connect(home, warn=False) as con:
        if spec.table not in con.views:
            raise LakeFeedError(
                f"the lake under {home} has no {spec.table} partitions; materialize "
                f"{spec.table} (Dagster UI or `alpaca-improved backfill`) first"
            )
        query = (
            f"SELECT symbol, session, ts, {', '.join(FEED_COLUMNS)} FROM {spec.table} "
            "WHERE list_contains($symbols, symbol) "
            "AND session >= coalesce($start, session) AND session <= coalesce($end, session) "
            "ORDER BY symbol, ts"
        )
        params = {"symbols": wanted, "start": start, "end": end}
        frame = con.sql(query, params=params).pl()
    out: dict[str, pd.DataFrame] = {}
    for symbol in wanted:
        rows = frame.filter(frame["symbol"] == symbol)
        if rows.height == 0:
            raise LakeFeedError(
                f"{symbol} has no {spec.table} bars between {start or 'the first session'} and "
                f"{end or 'the last'}; backfill it or drop it from the symbols"
            )
        pdf = rows.select(pl.col(FEED_COLUMNS).cast(pl.Float64)).to_pandas()
        pdf.index = pd.DatetimeIndex(_stamps(rows, spec), name="datetime")
        out[symbol] = pdf
    return out


def _stamps(rows: Any, spec: BarTimeframe) -> list[dt.datetime]:
    """Naive New York stamps: the session date for daily bars, else the bar's close (capped at
    the session's close: the last hourly bar, 15:30-16:00, is half an hour long)."""
    sessions = rows["session"].to_list()
    if spec.minutes == 0:
        return [dt.datetime.combine(s, dt.time()) for s in sessions]
    length = dt.timedelta(minutes=spec.minutes)
    closes = {s: session_open_close(s)[1].to_pydatetime() for s in set(sessions)}
    return [
        min(ts + length, closes[s]).astimezone(NEW_YORK).replace(tzinfo=None)
        for ts, s in zip(rows["ts"].to_list(), sessions, strict=True)
    ]


def feed_class() -> type:
    """``LakeData``: ``bt.feeds.PandasData`` with the lake's ``vwap`` and ``trade_count`` as two
    more lines (``data.vwap[0]``), built on first use."""
    global _FEED_CLASS
    if _FEED_CLASS is None:
        bt = import_backtrader()

        class LakeData(bt.feeds.PandasData):  # type: ignore[misc,name-defined]
            """A lake bar table's bars: OHLCV plus vwap and trade_count."""

            lines = ("vwap", "trade_count")
            params = (("vwap", -1), ("trade_count", -1))

        _FEED_CLASS = LakeData
    return _FEED_CLASS


def pandas_feed(frame: pd.DataFrame, symbol: str, timeframe: str = "1d") -> Any:
    """A :func:`feed_class` feed over ``frame`` (as :func:`read_bars` returns) named
    ``symbol``."""
    bt = import_backtrader()
    spec = timeframe_of(timeframe)
    return feed_class()(
        dataname=frame,
        name=symbol,
        timeframe=getattr(bt.TimeFrame, spec.bt_timeframe),
        compression=spec.compression,
        openinterest=None,
    )


def lake_feeds(
    home: Path | str,
    symbols: Iterable[str],
    timeframe: str = "1d",
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[Any]:
    """One backtrader feed per symbol (in the order given) over the lake's ``timeframe`` bars."""
    import_backtrader()  # fail before reading the lake when backtrader is missing
    bars = read_bars(home, symbols, timeframe, start, end)
    return [pandas_feed(frame, symbol, timeframe) for symbol, frame in bars.items()]
