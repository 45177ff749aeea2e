"""The send window of an order: it is sent on the data and within the session it was decided
for, or never. A crash between journaling an order and the broker's acknowledgement, followed by
downtime across a close or a new data session, must never send a decision made on stale data.
"""

from __future__ import annotations

from datetime import datetime

from live.clock import NEW_YORK, regular_hours
from live.journal import orders as jo
from live.orders.liquidate import FLATTEN_TAG


def send_window_closed(
    row: jo.OrderRow, latest_session: str | None, market_now: datetime
) -> str | None:
    """Why an order the broker never acknowledged may no longer be sent (None: it still may).

    One rule for a ``pending_submit`` order and for a ``submitting``/``unknown`` one the broker
    does not know: an order is sent on the data and within the session it was decided for, or
    never. Its window closes once the runner decides on a newer data session than the order's
    (liquidations carry no data session) or once the market closed after its decision.

    Args:
        row: The journaled order.
        latest_session: The data session the runner now decides on (None: no data yet).
        market_now: The market's current time.
    """
    if row.intent.tag != FLATTEN_TAG and latest_session and row.session != latest_session:
        return f"decided on the {row.session} data; the runner now decides on {latest_session}"
    close = regular_hours(row.decided_at).next_close
    if market_now >= close:
        decided = row.decided_at.astimezone(NEW_YORK)
        return (
            f"decided at {decided:%Y-%m-%d %H:%M} New York; the market closed since "
            f"({close.astimezone(NEW_YORK):%Y-%m-%d %H:%M})"
        )
    return None
