"""The daily history a backtrader run has delivered so far, as the snapshot's ``history`` frame.

``MarketSnapshot.history`` is the live runner's frame: one row per session and symbol
(``session, symbol, open, high, low, close, volume``) sorted by session then symbol, nothing
after the decision's session, the last ``lookback`` sessions (all when None).

Two ways to build it, with identical frames:

- :class:`PreloadedHistory` (pandas feeds such as :func:`research.backtrader_feed.lake_feeds`):
  the feeds' own frames are concatenated and sorted once, and each bar's history is a zero-copy
  slice of it, as our stepped engines do. Every bar backtrader delivers is checked against the
  row it must be (session and close), so a feed that filters or reorders its frame fails loudly
  instead of leaking a bar it did not deliver.
- :class:`CollectedHistory` (any backtrader feed): each delivered bar is appended to columns and
  the frame rebuilt per bar; linear in the history per bar, so slower on long runs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

HISTORY_COLUMNS = ("session", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = HISTORY_COLUMNS[2:]


class HistoryError(RuntimeError):
    """A feed delivered a bar that is not the next row of its own frame."""


def _pandas_frame(data: Any) -> pl.DataFrame | None:
    """The feed's daily frame in history columns, or None when it is not a plain pandas feed."""
    params = getattr(data, "p", None)
    frame = getattr(params, "dataname", None)
    if not isinstance(frame, pd.DataFrame) or getattr(params, "datetime", 0) is not None:
        return None  # not PandasData, or its datetime is a column rather than the index
    if not isinstance(frame.index, pd.DatetimeIndex) or not set(PRICE_COLUMNS) <= set(frame):
        return None
    return pl.DataFrame(
        {
            "session": frame.index.values.astype("datetime64[D]"),
            "symbol": data._name,
            **{c: frame[c].to_numpy(dtype=np.float64) for c in PRICE_COLUMNS},
        },
        schema_overrides={"session": pl.Date},
    )


class _Base:
    """Tracks which feeds delivered a bar this cycle and the sessions seen."""

    def __init__(self, datas: list[Any], lookback: int | None) -> None:
        self.datas = datas
        self.lookback = lookback
        self.seen = [0] * len(datas)
        self.sessions: list[dt.date] = []

    def update(self) -> tuple[dt.date, dict[str, float], pl.DataFrame]:
        """The decision's session, the closes of the feeds that delivered, and the history."""
        prices: dict[str, float] = {}
        for i, data in enumerate(self.datas):
            if len(data) == self.seen[i]:
                continue
            self.seen[i] = len(data)
            session, close = data.datetime.date(0), float(data.close[0])
            self._append(i, data, session, close)
            prices[data._name] = close
            if not self.sessions or session > self.sessions[-1]:
                self.sessions.append(session)
        first = self.sessions[-self.lookback :][0] if self.lookback else self.sessions[0]
        return self.sessions[-1], prices, self._frame(first, self.sessions[-1])

    def _append(self, i: int, data: Any, session: dt.date, close: float) -> None:
        raise NotImplementedError

    def _frame(self, first: dt.date, last: dt.date) -> pl.DataFrame:
        raise NotImplementedError


class CollectedHistory(_Base):
    """History appended bar by bar from backtrader's lines (works with any feed)."""

    def __init__(self, datas: list[Any], lookback: int | None) -> None:
        super().__init__(datas, lookback)
        self.rows: list[tuple] = []

    def _append(self, i: int, data: Any, session: dt.date, close: float) -> None:
        values = (float(data.open[0]), float(data.high[0]), float(data.low[0]), close)
        self.rows.append((session, data._name, *values, float(data.volume[0])))

    def _frame(self, first: dt.date, last: dt.date) -> pl.DataFrame:
        frame = pl.DataFrame(self.rows, schema=_SCHEMA, orient="row")
        return frame.filter(pl.col("session") >= first).sort("session", "symbol")


_SCHEMA = {"session": pl.Date, "symbol": pl.String, **dict.fromkeys(PRICE_COLUMNS, pl.Float64)}


class PreloadedHistory(_Base):
    """Zero-copy slices of the pandas feeds' frames, checked against every delivered bar."""

    def __init__(self, datas: list[Any], frames: list[pl.DataFrame], lookback: int | None):
        super().__init__(datas, lookback)
        self.frames = frames
        self.frame_days = [f.get_column("session").to_numpy() for f in frames]
        self.frame_closes = [f.get_column("close").to_numpy() for f in frames]
        self.start: list[int | None] = [None] * len(datas)
        self.combined = frames[0].clear()
        self.days = np.empty(0, dtype="datetime64[D]")

    @classmethod
    def of(cls, datas: list[Any], lookback: int | None) -> PreloadedHistory | None:
        """The preloaded history when every feed is a plain pandas feed, else None."""
        frames = [_pandas_frame(d) for d in datas]
        if not frames or any(f is None for f in frames):
            return None
        return cls(datas, frames, lookback)  # type: ignore[arg-type]

    def _append(self, i: int, data: Any, session: dt.date, close: float) -> None:
        days, day = self.frame_days[i], np.datetime64(session, "D")
        start = self.start[i]
        if start is None:  # its first bar (a feed may start later, or after fromdate)
            start = self.start[i] = int(np.searchsorted(days, day))
            self._combine()
        row = start + self.seen[i] - 1
        if row >= days.size or days[row] != day or self.frame_closes[i][row] != close:
            raise HistoryError(
                f"feed {data._name} delivered {session} close {close}, not row {row} of its "
                "frame; run DecideStrategy with preload=False for feeds that filter their frame"
            )

    def _combine(self) -> None:
        parts = [f.slice(s) for f, s in zip(self.frames, self.start, strict=True) if s is not None]
        self.combined = pl.concat(parts).sort("session", "symbol")
        self.days = self.combined.get_column("session").to_numpy()

    def _frame(self, first: dt.date, last: dt.date) -> pl.DataFrame:
        lo = int(np.searchsorted(self.days, np.datetime64(first, "D"), side="left"))
        hi = int(np.searchsorted(self.days, np.datetime64(last, "D"), side="right"))
        return self.combined.slice(lo, hi - lo)


def history_for(datas: list[Any], lookback: int | None, preload: bool) -> _Base:
    """:class:`PreloadedHistory` when ``preload`` and every feed allows it, else collected."""
    preloaded = PreloadedHistory.of(datas, lookback) if preload else None
    return preloaded if preloaded is not None else CollectedHistory(datas, lookback)
