"""Drive a minute-bar strategy's ``decide()`` through sessions of minute bars as the live runner
does: one decision at every minute's close, the snapshot holding the session's closed minutes
only, the session bounds in ``features``, the position carried from its own orders."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from contracts.calendar import session_open_close
from strategies.base import Strategy
from strategies.equity.intraday import SESSION_CLOSE, SESSION_OPEN
from strategies.models import INTRADAY_COLUMNS, Book, MarketSnapshot, OrderIntent, Position, Side

CASH = 100_000.0
NO_HISTORY = pl.DataFrame(schema={"session": pl.Date, "symbol": pl.String, "close": pl.Float64})
MINUTE = dt.timedelta(minutes=1)

# (symbol, entry bar start, exit bar start or None while open); bar start = UTC datetime
RoundTrip = tuple[str, dt.datetime, dt.datetime | None]


def snapshot_at(day: pl.DataFrame, session: dt.date, closed: int) -> MarketSnapshot:
    """The snapshot ``closed`` minutes after ``session``'s open (``day`` sorted by ts)."""
    opn, cls = session_open_close(session)
    ts = (opn + closed * MINUTE).to_pydatetime()
    starts = day.get_column("ts").dt.epoch("ns").to_numpy()
    seen = day.head(int(np.searchsorted(starts, (opn + (closed - 1) * MINUTE).value, "right")))
    return MarketSnapshot(
        ts,
        session,
        {},
        NO_HISTORY,
        features={SESSION_OPEN: opn.to_pydatetime(), SESSION_CLOSE: cls.to_pydatetime()},
        intraday=seen,
    )


def step_round_trips(
    strategy: Strategy, bars: pl.DataFrame, sessions: list[dt.date]
) -> tuple[list[RoundTrip], list[tuple[dt.datetime, OrderIntent]]]:
    """Round trips (sorted) and every intent with its decision time, stepping minute by minute."""
    held: dict[str, float] = {}
    entered: dict[str, dt.datetime] = {}
    trips: list[RoundTrip] = []
    log: list[tuple[dt.datetime, OrderIntent]] = []
    for session in sessions:
        opn, cls = session_open_close(session)
        day = bars.filter(pl.col("session") == session).select(INTRADAY_COLUMNS).sort("ts")
        for closed in range(1, int((cls - opn) / MINUTE) + 1):
            snap = snapshot_at(day, session, closed)
            positions = tuple(Position(s, q, 1.0, 1.0) for s, q in held.items() if q)
            bar_start = snap.ts - MINUTE
            for intent in strategy.decide(snap, Book.build(CASH, positions)):
                log.append((snap.ts, intent))
                symbol = intent.legs[0].symbol
                if intent.legs[0].side is Side.BUY:
                    held[symbol], entered[symbol] = intent.qty, bar_start
                else:
                    trips.append((symbol, entered.pop(symbol), bar_start))
                    held[symbol] = 0
    trips += [(s, t, None) for s, t in entered.items()]
    return sorted(trips, key=lambda r: (r[0], r[1])), log
