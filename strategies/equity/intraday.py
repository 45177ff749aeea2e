"""Minute bars on a session grid, the input of intraday (``timeframe = "1m"``) signal families.

A :class:`MinutePanel` lays a set of sessions' minute bars on the grid of every regular-hours
minute (row = one minute bar, in session order; a half day has 210 rows, a full day 390). Row
``r`` of a session is the bar starting ``r`` minutes after the open; a decision on that row is
taken when the bar closes. Minutes without a bar (no trades, a halt) keep the previous close as
their price and carry ``has_bar = False``, so signals fire only on a symbol's own bars.

The same builder serves the vectorized backtest (many sessions, built from the lake) and
``decide()`` (the session's closed minutes so far, from ``MarketSnapshot.intraday``), so both
feed one compiled kernel the same numbers in the same order and agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from strategies.models import MarketSnapshot

NS_PER_MINUTE = 60_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# MarketSnapshot.features keys an intraday decision needs: the session's regular-hours open and
# close (tz-aware datetimes from the exchange calendar, so a half day closes at 13:00). The
# snapshot carries no calendar; the caller (live runner, backtest driver) sets both.
SESSION_OPEN = "session_open"
SESSION_CLOSE = "session_close"


def to_ns(moment: Any) -> int:
    """A tz-aware datetime (or pandas Timestamp) as integer nanoseconds since the epoch, exactly
    (an integer is taken as nanoseconds already)."""
    if isinstance(moment, int | np.integer):
        return int(moment)
    if getattr(moment, "tzinfo", None) is None:
        raise ValueError(f"session bounds must be timezone-aware, got {moment!r}")
    if hasattr(moment, "value"):  # pandas Timestamp: already exact nanoseconds
        return int(moment.value)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def session_bounds(snapshot: MarketSnapshot) -> tuple[int, int]:
    """The decision session's open and close (ns) from ``snapshot.features``.

    Raises:
        ValueError: a bound is missing (naming the features key the caller must set).
    """
    missing = [k for k in (SESSION_OPEN, SESSION_CLOSE) if k not in snapshot.features]
    if missing:
        raise ValueError(
            f"intraday decision needs snapshot.features {missing}: the session's open and close "
            "(tz-aware, from the exchange calendar; half days close early)"
        )
    opn, cls = to_ns(snapshot.features[SESSION_OPEN]), to_ns(snapshot.features[SESSION_CLOSE])
    if cls <= opn or (cls - opn) % NS_PER_MINUTE:
        raise ValueError(
            f"snapshot.features {SESSION_CLOSE!r} must be whole minutes after {SESSION_OPEN!r}"
        )
    return opn, cls


@dataclass(frozen=True)
class MinutePanel:
    """Minute bars of ``symbols`` over consecutive sessions, one row per session minute.

    Attributes:
        symbols: Column order.
        ts: Start of each row's minute, ns since the epoch (UTC), shape ``(rows,)``.
        minute: Minutes since its session's open of each row (0 = the opening bar).
        session_minutes: Length of each row's session in minutes (390, or 210 on a half day).
        session_index: Position of each row's session in the sessions passed to :meth:`build`.
        close: Close, forward-filled over minutes without a bar (and back-filled before a
            symbol's first bar), shape ``(rows, symbols)``; what a fill on that row pays.
        vwap: The bar's VWAP (its close when the source sent none), NaN without a bar.
        volume: The bar's volume, NaN without a bar.
        has_bar: True where the symbol printed a bar in that minute.
    """

    symbols: tuple[str, ...]
    ts: np.ndarray
    minute: np.ndarray
    session_minutes: np.ndarray
    session_index: np.ndarray
    close: np.ndarray
    vwap: np.ndarray
    volume: np.ndarray
    has_bar: np.ndarray

    @property
    def session_last_rows(self) -> np.ndarray:
        """Row index of each session's last minute."""
        return np.flatnonzero(self.minute + 1 == self.session_minutes)

    def head(self, rows: int) -> MinutePanel:
        """The first ``rows`` rows (what was known when row ``rows - 1`` closed)."""
        return MinutePanel(
            self.symbols,
            *(a[:rows] for a in (self.ts, self.minute, self.session_minutes, self.session_index)),
            *(a[:rows] for a in (self.close, self.vwap, self.volume, self.has_bar)),
        )

    @classmethod
    def build(
        cls,
        bars: pl.DataFrame,
        symbols: Sequence[str],
        sessions: Sequence[tuple[Any, Any]],
    ) -> MinutePanel:
        """Lay ``bars`` (columns ``ts``, ``symbol``, ``close``, ``vwap``, ``volume``; ``ts`` = bar
        start, UTC) on the minute grid of ``sessions`` (``(open, close)`` pairs in order).

        Bars outside regular hours or of other symbols are ignored; a repeated (symbol, minute)
        keeps the last row given.
        """
        opens = np.array([to_ns(o) for o, _ in sessions], dtype=np.int64)
        lengths = np.array([(to_ns(c) - to_ns(o)) // NS_PER_MINUTE for o, c in sessions])
        starts = np.concatenate(([0], np.cumsum(lengths)))
        rows = int(starts[-1])
        session_index = np.repeat(np.arange(len(sessions)), lengths)
        minute = np.arange(rows, dtype=np.int64) - starts[session_index]
        shape = (rows, len(symbols))
        close = np.full(shape, np.nan)
        vwap = np.full(shape, np.nan)
        volume = np.full(shape, np.nan)
        col_of = {s: j for j, s in enumerate(symbols)}
        frame = bars.filter(pl.col("symbol").is_in(list(symbols)))
        if frame.height and rows:
            ts = frame.get_column("ts").dt.epoch("ns").to_numpy()
            s = np.searchsorted(opens, ts, side="right") - 1
            offset = (ts - opens[np.maximum(s, 0)]) // NS_PER_MINUTE
            inside = (s >= 0) & (offset >= 0) & (offset < lengths[np.maximum(s, 0)])
            row = (starts[np.maximum(s, 0)] + offset)[inside]
            col = np.array([col_of[x] for x in frame.get_column("symbol").to_list()])[inside]
            px = frame.get_column("close").cast(pl.Float64).to_numpy()[inside]
            vw = frame.get_column("vwap").cast(pl.Float64).fill_null(np.nan).to_numpy()[inside]
            close[row, col] = px
            vwap[row, col] = np.where(np.isfinite(vw), vw, px)
            volume[row, col] = frame.get_column("volume").cast(pl.Float64).to_numpy()[inside]
        has_bar = np.isfinite(close)
        ts_grid = opens[session_index] + minute * NS_PER_MINUTE
        return cls(
            tuple(symbols),
            ts_grid,
            minute,
            lengths[session_index].astype(np.int64),
            session_index,
            _fill(close),
            vwap,
            volume,
            has_bar,
        )


def _fill(close: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs down each column, then back-fill the leading ones."""
    out = close.copy()
    for j in range(out.shape[1]):
        col = out[:, j]
        valid = np.isfinite(col)
        if not valid.any():
            continue
        idx = np.where(valid, np.arange(col.size), 0)
        np.maximum.accumulate(idx, out=idx)
        filled = col[idx]
        filled[: int(np.argmax(valid))] = col[int(np.argmax(valid))]
        out[:, j] = filled
    return out


def intraday_bars(snapshot: MarketSnapshot) -> pl.DataFrame:
    """The snapshot's closed minutes (an empty frame when it carries none)."""
    if snapshot.intraday is None:
        return pl.DataFrame(
            schema={
                "ts": pl.Datetime("ns", "UTC"),
                "symbol": pl.String,
                "close": pl.Float64,
                "vwap": pl.Float64,
                "volume": pl.Float64,
            }
        )
    return snapshot.intraday


def decision_minute(snapshot: MarketSnapshot, opn: int) -> int:
    """Whole minutes from the open to the decision (= the closed bars' count so far)."""
    return (to_ns(snapshot.ts) - opn) // NS_PER_MINUTE
