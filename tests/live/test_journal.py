"""Client order ids and the SQLite journal (write-ahead of every broker call)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from live.book import Ledger
from live.brokers.sim import SimBroker
from live.clock import SimClock
from live.journal import orders as jo
from live.journal.store import Journal
from live.orders import ids
from live.orders.manager import OrderManager
from live.orders.reports import OrderReport, OrderStatus, OrderTicket
from tests.live.helpers import T0, equity_ticket, quote


def test_client_order_ids_are_deterministic_short_and_traceable() -> None:
    dep = "iron-condor-spy-weekly-approved-2024-03-01-with-a-very-long-name"
    cid = ids.client_order_id(dep, T0, 7, 4)
    assert cid == ids.client_order_id(dep, T0, 7, 4)
    assert len(cid) <= ids.MAX_LEN and len(ids.client_order_id(dep, T0, 999, 4, 999)) <= 48
    parts = ids.parse(cid)
    assert parts is not None
    assert (parts.deploy8, parts.minute, parts.seq, parts.legs) == (
        ids.deploy8(dep),
        "202403011500",
        7,
        4,
    )
    assert cid != ids.client_order_id(dep, T0 + timedelta(seconds=1), 7, 4)  # same minute
    assert cid != ids.client_order_id(dep, T0, 8, 4)
    assert cid != ids.client_order_id(dep + "x", T0, 7, 4)
    assert not ids.is_ours("web-order-123") and ids.is_ours(cid)


def test_resubmission_after_cancel_uses_a_new_id() -> None:
    cid = ids.client_order_id("dep", T0, 0, 1)
    again = ids.with_attempt(cid, 1)
    assert again != cid and again.endswith("-r1") and ids.parse(again).attempt == 1
    assert ids.with_attempt(again, 2).endswith("-r2")
    assert ids.with_attempt(again, 0) == cid


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ids.client_order_id("dep", datetime(2024, 1, 1), 0, 1)  # noqa: DTZ001 - the point


def test_journal_is_wal_with_full_sync(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    assert j.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert j.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


class SpyBroker(SimBroker):
    """Checks, from a second connection, that the order is durably journaled before the call."""

    seen: list[str]

    def submit(self, ticket: OrderTicket) -> OrderReport:
        db = sqlite3.connect(self.journal_path)
        row = db.execute(
            "SELECT status FROM orders WHERE client_order_id=?", (ticket.client_order_id,)
        ).fetchone()
        db.close()
        self.seen.append(row[0] if row else "missing")
        return super().submit(ticket)


def test_the_order_row_is_committed_before_the_broker_is_called(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    clock = SimClock(T0)
    broker = SpyBroker(lambda s: quote(500.0), clock)
    broker.journal_path, broker.seen = j.path, []  # type: ignore[attr-defined]
    ticket = equity_ticket()
    jo.record_decision(
        j, "dep-one", "2024-03-01", T0, [(0, ticket.intent, ticket.client_order_id)], T0
    )
    manager = OrderManager(j, broker, Ledger(), clock, lambda point: None)
    manager.send(jo.get_order(j, ticket.client_order_id))
    assert broker.seen == ["submitting"]
    row = jo.get_order(j, ticket.client_order_id)
    assert row.status is OrderStatus.FILLED and row.broker_id
    assert jo.saved_positions(j) == {("dep-one", "SPY"): 10.0}


def test_decisions_are_unique_per_deployment_and_session(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    t = equity_ticket()
    jo.record_decision(j, "dep-one", "2024-03-01", T0, [(0, t.intent, t.client_order_id)], T0)
    with pytest.raises(sqlite3.IntegrityError):
        jo.record_decision(j, "dep-one", "2024-03-01", T0, [], T0)
    assert j.decided("dep-one", "2024-03-01") and not j.decided("dep-one", "2024-03-04")
    assert len(jo.list_orders(j)) == 1  # the failed transaction left nothing behind


def test_positions_fold_from_fills_and_rebuild(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    fills = [
        jo.FillRow("e1", None, "d", "SPY", "us_equity", 10, 100.0, T0),
        jo.FillRow("e2", None, "d", "SPY", "us_equity", 10, 110.0, T0),
        jo.FillRow("e3", None, "d", "SPY", "us_equity", -5, 120.0, T0),
        jo.FillRow("e1", None, "d", "SPY", "us_equity", 10, 100.0, T0),
    ]  # duplicate id
    assert len(jo.record_fills(j, fills)) == 3
    ledger = Ledger.from_fills(jo.all_fills(j))
    assert ledger.positions_map() == {("d", "SPY"): (15.0, 105.0, "us_equity")}
    assert ledger.cash_flow["d"] == -(1000 + 1100) + 600
