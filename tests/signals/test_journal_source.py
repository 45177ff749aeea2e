"""The journal tailer on a real journal written through ``live.journal``'s own APIs: the events,
their deterministic ids, lineage and journal timestamps; a second poll adds nothing; a lost
cursor re-reads without a single new row; new journal rows become new events."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from contracts.paths import journal_path
from live.journal import orders as jo
from live.journal.store import Journal
from live.orders.reports import OrderStatus
from signals import outbox as ob
from signals.db import cursors, make_engine, outbox, signal_events
from signals.journal_source import JournalSource
from signals.model import Plan, Tier
from tests.live.helpers import T0, equity_ticket, manifest
from tests.signals.outbox_fixtures import add_plan

SESSION = "2024-03-01"
DEP = "dep-one"
M1 = T0 + dt.timedelta(minutes=1)
M2 = T0 + dt.timedelta(minutes=2)


def write_journal(j: Journal) -> tuple[Journal, str]:
    """Journal a deployment, a decision, its order's life, two fills, a halting cycle and a
    deployment's risk reason through ``live.journal``'s own APIs (SQLite or Postgres)."""
    j.upsert_deployment(DEP, manifest(mlflow_run_id="run-42"), "f" * 64, T0)
    ticket = equity_ticket()
    cid = ticket.client_order_id
    jo.record_decision(j, DEP, SESSION, T0, [(0, ticket.intent, cid)], T0)
    jo.update_order(j, cid, T0, "runner", status=OrderStatus.SUBMITTING)
    jo.update_order(j, cid, T0, "broker", status=OrderStatus.NEW, broker_id="b-1")
    jo.update_order(j, cid, M1, "broker", status=OrderStatus.FILLED, filled_qty=10, avg_price=100)
    jo.record_fills(j, [
        jo.FillRow("ex-1", cid, DEP, "SPY", "us_equity", 10, 100.0, M1),
        jo.FillRow("ex-2", cid, DEP, "SPY", "us_equity", -10, 105.0, M2),
    ])  # fmt: skip
    seq = j.start_cycle(T0, "active")
    j.finish_cycle(seq, M2, "halted", {})
    j.set_meta("risk_since", {
        "": {"kill_switch": {"state": "halted", "at": M1.isoformat()}},
        DEP: {"daily_loss": {"state": "reducing", "at": M1.isoformat()}},
    })  # fmt: skip
    return j, cid


@pytest.fixture
def setup(tmp_path: Path) -> tuple[sa.Engine, JournalSource, Journal, str]:
    engine = make_engine(tmp_path, environ={})
    add_plan(engine, Plan("all", "*", Tier("rt"), 100, telegram_chat_id=-100))
    j, cid = write_journal(Journal(journal_path(tmp_path)))
    return engine, JournalSource(engine, tmp_path), j, cid


def stored(engine: sa.Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {
            r.event_id: json.loads(r.event_json) for r in conn.execute(sa.select(signal_events))
        }


def n_rows(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar() or 0)


def test_events_ids_lineage_and_timestamps(setup) -> None:  # type: ignore[no-untyped-def]
    engine, source, _, cid = setup
    assert source.poll(T0) == 8
    ev = stored(engine)
    assert set(ev) == {
        f"approval:{DEP}:{'f' * 16}", f"decision:{DEP}:{SESSION}", f"order:{cid}:submitted",
        f"order:{cid}:filled", "fill:ex-1", "fill:ex-2", "risk:cycle:1:halted",
        f"risk:{DEP}:daily_loss:reducing:{M1.isoformat()}",
    }  # fmt: skip
    lin = ev["fill:ex-2"]["lineage"]
    assert lin == {"deployment_id": DEP, "manifest_id": "m-ma-spy", "strategy": "ma_crossover",
                   "mlflow_run_id": "run-42", "client_order_ids": [cid]}  # fmt: skip
    assert ev[f"decision:{DEP}:{SESSION}"]["lineage"]["client_order_ids"] == [cid]
    assert (
        ev["fill:ex-2"]["ts"] == M2.isoformat()
        and ev[f"order:{cid}:filled"]["ts"] == M1.isoformat()
    )
    assert ev["risk:cycle:1:halted"]["facts"]["reasons"] == {
        "account/kill_switch": "halted", f"{DEP}/daily_loss": "reducing"}  # fmt: skip
    chart = ev["fill:ex-2"]["facts"]["chart"]  # buy 10 @ 100, sell 10 @ 105: +50 realized
    assert chart["kind"] == "equity" and chart["points"][-1][1] == pytest.approx(50.0, abs=1e-9)
    assert n_rows(engine) == 8  # the one plan's channel, once per event


def test_second_poll_and_lost_cursors_add_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    engine, source, j, cid = setup
    source.poll(T0)
    before = n_rows(engine)
    assert source.poll(T0) == 0
    with engine.begin() as conn:  # as if a crash lost the cursors' commit: everything re-read
        conn.execute(sa.delete(cursors))
    assert source.poll(T0) == 0 and n_rows(engine) == before
    jo.record_fills(j, [jo.FillRow("ex-3", cid, DEP, "SPY", "us_equity", 5, 110.0, M2)])
    assert source.poll(T0) == 1
    ev = stored(engine)["fill:ex-3"]
    assert len(ev["facts"]["chart"]["points"]) == 3 and n_rows(engine) == before + 1
    with engine.connect() as conn:
        assert ob.get_cursor(conn, "journal:fills") == "3"


def test_no_journal_yet_is_no_events(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, environ={})
    assert JournalSource(engine, tmp_path / "elsewhere").poll(T0) == 0
    assert not journal_path(tmp_path / "elsewhere").exists()  # read-only: nothing created


def test_a_running_cycle_reports_its_state_once(setup) -> None:  # type: ignore[no-untyped-def]
    engine, source, j, _ = setup
    source.poll(T0)
    seq = j.start_cycle(M2, "active")  # back to active while the cycle runs
    assert source.poll(T0) == 1 and f"risk:cycle:{seq}:active" in stored(engine)
    j.finish_cycle(seq, M2 + dt.timedelta(seconds=5), "active", {})
    assert source.poll(T0) == 0  # the finished cycle is the same transition
