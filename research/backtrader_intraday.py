"""The snapshot of a minute-bar (``timeframe = "1m"``) strategy on backtrader, as the live runner's
``minute_snapshot`` builds it at each minute bar's close.

At the close of the minute bar that starts at t (backtrader stamps it t + 1 min, New York):

- ``ts`` = t + 1 min (UTC), ``session`` = that New York date;
- ``intraday`` = the session's minute bars of every feed that closed by ``ts`` (columns
  ``INTRADAY_COLUMNS``, ``ts`` = the bar's start, UTC), sorted by ts then symbol;
- ``history`` = the daily bars handed to the adapter (``daily``), sessions before this one;
- ``prices`` = the last daily closes overlaid with the closes of the minute bars just closed;
- ``features`` = the session's regular-hours open and close (UTC), the keys the intraday
  families read.

The minute frames are the lake feeds' own pandas frames (one concatenation and sort at start);
every bar backtrader delivers is checked against its row, as :mod:`research.backtrader_history`
does for daily bars.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from contracts.calendar import session_open_close
from strategies.equity.intraday import SESSION_CLOSE, SESSION_OPEN
from strategies.models import INTRADAY_COLUMNS, NEW_YORK, MarketSnapshot

MINUTE = dt.timedelta(minutes=1)
DAILY_SCHEMA = {
    "session": pl.Date,
    "symbol": pl.String,
    **dict.fromkeys(("open", "high", "low", "close", "volume"), pl.Float64),
}


def _minute_frame(data: Any) -> pl.DataFrame:
    """The feed's frame in ``INTRADAY_COLUMNS`` (ts = bar start, UTC)."""
    frame = getattr(getattr(data, "p", None), "dataname", None)
    if not isinstance(frame, pd.DataFrame) or not set(INTRADAY_COLUMNS[2:]) <= set(frame):
        raise ValueError(
            f"feed {data._name} is not a lake minute feed; minute strategies run on "
            "lake_feeds(home, symbols, '1m')"
        )
    closes = frame.index.tz_localize(NEW_YORK).tz_convert("UTC")
    return pl.DataFrame(
        {
            "ts": pl.Series((closes - MINUTE).tz_localize(None).to_numpy()).dt.replace_time_zone(
                "UTC"
            ),
            "symbol": data._name,
            **{c: frame[c].to_numpy() for c in INTRADAY_COLUMNS[2:-1]},
            "trade_count": frame["trade_count"].to_numpy().astype(np.int64),
        }
    )


class IntradaySnapshots:
    """Builds each minute decision's snapshot from the feeds' frames and the daily bars."""

    def __init__(self, datas: list[Any], daily: pl.DataFrame | None) -> None:
        self.datas = datas
        frames = [_minute_frame(d) for d in datas]
        self.bars = pl.concat(frames).sort("ts", "symbol")
        self.starts = self.bars.get_column("ts").dt.epoch("ns").to_numpy()
        self.own = [(f.get_column("ts").dt.epoch("ns").to_numpy(), f["close"]) for f in frames]
        self.daily = pl.DataFrame(schema=DAILY_SCHEMA) if daily is None else daily
        self.seen = [0] * len(datas)
        self.first: list[int | None] = [None] * len(datas)
        self._day: tuple[dt.date, pl.DataFrame, dict[str, float], dict[str, Any]] | None = None

    def _session(self, session: dt.date) -> tuple[pl.DataFrame, dict[str, float], dict[str, Any]]:
        if self._day is None or self._day[0] != session:
            history = self.daily.filter(pl.col("session") < session).sort("session", "symbol")
            last = history.group_by("symbol").agg(pl.col("close").last())
            opn, cls = session_open_close(session)
            bounds = {SESSION_OPEN: opn.to_pydatetime(), SESSION_CLOSE: cls.to_pydatetime()}
            self._day = (session, history, dict(last.iter_rows()), bounds)
        return self._day[1:]

    def update(self) -> MarketSnapshot:
        """The snapshot at the close of the minute bar(s) backtrader just delivered."""
        closes: dict[str, float] = {}
        stamp = None
        for i, data in enumerate(self.datas):
            if len(data) == self.seen[i]:
                continue
            self.seen[i] = len(data)
            stamp = data.datetime.datetime(0)
            start_ns = pd.Timestamp(stamp, tz=NEW_YORK).value - 60_000_000_000
            closes[data._name] = self._check(i, data, start_ns)
        assert stamp is not None  # next() runs only when a feed delivered a bar
        ts = stamp.replace(tzinfo=NEW_YORK).astimezone(dt.UTC)
        session = stamp.date()
        history, last, bounds = self._session(session)
        opn_ns = pd.Timestamp(bounds[SESSION_OPEN]).value
        lo = int(np.searchsorted(self.starts, opn_ns, "left"))
        hi = int(np.searchsorted(self.starts, pd.Timestamp(ts).value - 60_000_000_000, "right"))
        intraday = self.bars.slice(lo, hi - lo)
        prices = {**last, **closes}
        return MarketSnapshot(ts, session, prices, history, {}, bounds, intraday=intraday)

    def _check(self, i: int, data: Any, start_ns: int) -> float:
        """The delivered bar's close, after checking it is the next row of its frame."""
        starts, close_col = self.own[i]
        first = self.first[i]
        if first is None:
            first = self.first[i] = int(np.searchsorted(starts, start_ns))
        row = first + self.seen[i] - 1
        close = float(data.close[0])
        if row >= starts.size or starts[row] != start_ns or close_col[row] != close:
            raise ValueError(
                f"feed {data._name} delivered a bar at {data.datetime.datetime(0)} that is not "
                f"row {row} of its frame; pass the lake_feeds frames unfiltered"
            )
        return close
