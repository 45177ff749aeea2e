"""What the market-data stream layer hands to its consumers, typed once.

Every timestamp is the exchange's (from the vendor's frame), never the receive clock. A minute
bar is labelled by its start and covers ``[ts, ts + 1 min)``; it exists only for a minute with
valid trades, so a missing minute is not by itself a gap (:mod:`.gaps` decides what is).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, NamedTuple

BarSource = Literal["stream", "revision", "backfill"]


class MinuteBar(NamedTuple):
    """One minute bar of one symbol (the ``stock_bars_1m`` columns, ``source`` = how it came).

    A named tuple, not a frozen dataclass: as immutable and hashable, read by the same names,
    but built in a fifth of the time (a frozen dataclass's ``__init__`` pays one
    ``object.__setattr__`` per field, about 0.9 us a bar: a quarter of the per-bar budget of
    the stream ingest, issue 11). Change fields with ``bar._replace(...)``.
    """

    symbol: str
    ts: datetime  # bar start, tz-aware UTC, whole minute
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    trade_count: int
    source: BarSource = "stream"


def minute_bar(
    symbol: str, ts: datetime, row: Mapping[str, Any], source: BarSource = "stream"
) -> MinuteBar:
    """A bar from the ``o h l c v vw n`` keys Alpaca (stream and REST) and Polygon share."""
    return MinuteBar(  # positional: this runs once per streamed bar
        symbol,
        ts,
        float(row["o"]),
        float(row["h"]),
        float(row["l"]),
        float(row["c"]),
        float(row["v"]),
        float(row.get("vw") or 0.0),
        int(row.get("n") or 0),  # Polygon's AM carries no trade count
        source,
    )


class OptionQuote(NamedTuple):
    """One NBBO quote of one option contract (OCC symbol), at the exchange's time.

    A named tuple for the same reason as :class:`MinuteBar` (the quote stream's hot path).
    """

    symbol: str
    ts: datetime  # tz-aware UTC
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    bid_exchange: str = ""
    ask_exchange: str = ""


class FeedState(StrEnum):
    """Health of one (key, feed) connection. The error states carry Alpaca's code."""

    CONNECTING = "connecting"
    STREAMING = "streaming"  # authenticated, subscribed, market data arriving
    STALE = "stale"  # open but silent past data_timeout: a reconnect is forced
    RECONNECTING = "reconnecting"
    AUTH_FAILED = "auth_failed"  # 402: wrong key/secret (retried with backoff)
    AUTH_TIMEOUT = "auth_timeout"  # 404
    SYMBOL_LIMIT = "symbol_limit"  # 405: the plan's symbol limit; the set is unchanged
    CONNECTION_LIMIT = "connection_limit"  # 406: another connection holds this key and feed
    SLOW_CLIENT = "slow_client"  # 407
    INSUFFICIENT_SUBSCRIPTION = "insufficient_subscription"  # 409: stopped for good
    EVICTED = "evicted"  # Polygon: a newer connection on the key closed this one
    STOPPED = "stopped"


ERROR_STATES: dict[int, FeedState] = {
    402: FeedState.AUTH_FAILED,
    404: FeedState.AUTH_TIMEOUT,
    405: FeedState.SYMBOL_LIMIT,
    406: FeedState.CONNECTION_LIMIT,
    407: FeedState.SLOW_CLIENT,
    409: FeedState.INSUFFICIENT_SUBSCRIPTION,
}


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """A change of a feed's health, with the one-line message an operator reads."""

    feed: str  # e.g. "alpaca:iex", "alpaca-options:indicative", "polygon:stocks"
    state: FeedState
    message: str
    at: datetime  # when the layer saw it (receive clock: this is about the connection)
    code: int | None = None


# Consumers subscribe callbacks; they run on the stream thread and must not block (queue work).
BarHandler = Callable[[MinuteBar], None]
QuoteHandler = Callable[[OptionQuote], None]
StatusHandler = Callable[[FeedStatus], None]
