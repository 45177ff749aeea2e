"""The simulated market clock follows the NYSE calendar like Alpaca's /v2/clock does."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from live.brokers.sim import SimBroker
from live.clock import NEW_YORK, SimClock, regular_hours, weekday_hours
from live.orders.reports import OrderStatus, OrderTicket, Quote
from strategies.models import AssetClass, Leg, OrderIntent, OrderType, Side


def ny(day: str, hhmm: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time.fromisoformat(hhmm), NEW_YORK)


@pytest.mark.parametrize(
    ("at", "is_open", "next_open", "next_close"),
    [
        # Independence Day 2024 (Thursday): closed all day; the 3rd closes early at 13:00
        (ny("2024-07-04", "11:00"), False, ny("2024-07-05", "09:30"), ny("2024-07-05", "16:00")),
        (ny("2024-07-03", "12:59"), True, ny("2024-07-05", "09:30"), ny("2024-07-03", "13:00")),
        (ny("2024-07-03", "13:00"), False, ny("2024-07-05", "09:30"), ny("2024-07-05", "16:00")),
        # the day after Thanksgiving closes at 13:00; Good Friday 2024 is a holiday
        (ny("2024-11-29", "14:00"), False, ny("2024-12-02", "09:30"), ny("2024-12-02", "16:00")),
        (ny("2024-03-28", "16:30"), False, ny("2024-04-01", "09:30"), ny("2024-04-01", "16:00")),
        # an ordinary session: open at 9:30 sharp, closed at 16:00 sharp
        (ny("2024-10-15", "09:30"), True, ny("2024-10-16", "09:30"), ny("2024-10-15", "16:00")),
        (ny("2024-10-15", "09:29"), False, ny("2024-10-15", "09:30"), ny("2024-10-15", "16:00")),
        (ny("2024-10-15", "16:00"), False, ny("2024-10-16", "09:30"), ny("2024-10-16", "16:00")),
        # a one-off closure: the national day of mourning for President Carter (2025-01-09)
        (ny("2025-01-09", "10:00"), False, ny("2025-01-10", "09:30"), ny("2025-01-10", "16:00")),
    ],
)
def test_nyse_hours(at: datetime, is_open: bool, next_open: datetime, next_close: datetime) -> None:
    clock = regular_hours(at)
    assert (clock.is_open, clock.next_open, clock.next_close) == (is_open, next_open, next_close)
    assert clock.timestamp == at


def test_outside_the_calendar_weekday_hours_apply() -> None:
    at = ny("2040-03-06", "10:00")  # a Tuesday beyond the calendar's horizon
    assert regular_hours(at) == weekday_hours(at)
    assert regular_hours(at).is_open


def test_sim_broker_expires_day_orders_at_an_early_close() -> None:
    clock = SimClock(ny("2024-11-29", "10:00"))
    quote = Quote(99.0, 101.0, 100.0, ny("2024-11-29", "09:59"), (1.0, 0.0, 0.0, 0.0))
    broker = SimBroker(lambda s: quote, clock)
    leg = Leg("SPY", Side.BUY, 1, AssetClass.US_EQUITY)
    intent = OrderIntent("t", (leg,), 10, OrderType.LIMIT, limit_price=90.0)
    report = broker.submit(OrderTicket("cid-early-close", intent, "t"))
    assert report.status is OrderStatus.NEW  # a limit below the ask rests
    clock.set(ny("2024-11-29", "12:30"))
    broker.step()
    assert _status(broker) is OrderStatus.NEW
    clock.set(ny("2024-11-29", "13:05"))  # after the 13:00 close, before 16:00
    broker.step()
    assert _status(broker) is OrderStatus.EXPIRED


def _status(broker: SimBroker) -> OrderStatus:
    report = broker.get_order("cid-early-close")
    assert report is not None
    return report.status
