"""The market's time as the runner knows it: the broker's clock at its last read, plus the
runner clock's time since (so a send window is judged on the market's clock, not the host's)."""

from __future__ import annotations

from datetime import datetime, timedelta

from live.clock import Clock, MarketClock
from live.journal import orders as jo
from live.orders.send_window import send_window_closed


class MarketTime:
    """Owns the last market-clock reading and when (monotonic) it was taken.

    Args:
        clock: The runner's clock (its ``monotonic()`` advances the reading).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.market: MarketClock | None = None  # the broker's clock at the last refresh
        self._mono = 0.0  # clock.monotonic() when ``market`` was read

    def set(self, market: MarketClock) -> None:
        """Take a new reading of the broker's market clock."""
        self.market, self._mono = market, self.clock.monotonic()

    def now(self) -> datetime:
        """The market's time now: its clock at the last reading plus the time since (the
        runner's clock before any reading)."""
        if self.market is None:
            return self.clock.now()
        elapsed = self.clock.monotonic() - self._mono
        return self.market.timestamp + timedelta(seconds=max(elapsed, 0.0))

    def too_late(self, row: jo.OrderRow, session: str | None) -> str | None:
        """Why an order the broker never acknowledged may no longer be sent (None: it may, or
        the market's time is unknown and nothing is sent yet)."""
        if self.market is None:
            return None
        return send_window_closed(row, session, self.now())
