"""The tailer on the Postgres journal (``ALPACA_IMPROVED_DATABASE_URL``): the same events, ids
and lineage as on SQLite, read through ``live.journal.pg`` read-only, into a Postgres outbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from contracts.database import DATABASE_ENV, JOURNAL_SCHEMA_ENV, parse_database_url
from live.journal.pg import PgJournal
from signals.db import make_engine, signal_events
from signals.journal_source import JournalSource
from signals.model import Plan, Tier
from tests.signals import test_journal_source as sq
from tests.signals.outbox_fixtures import add_plan


def test_postgres_journal_gives_the_same_events(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = parse_database_url(postgres_url)
    writer, cid = sq.write_journal(PgJournal(db, "live_pg"))
    monkeypatch.setenv(DATABASE_ENV, postgres_url)
    monkeypatch.setenv(JOURNAL_SCHEMA_ENV, "live_pg")
    engine = make_engine(tmp_path, environ={DATABASE_ENV: postgres_url})
    add_plan(engine, Plan("all", "*", Tier("rt"), 100, telegram_chat_id=-100))
    source = JournalSource(engine, tmp_path)  # opens live.journal.pg.open_journal read-only
    assert source.poll(sq.T0) == 8 and source.poll(sq.T0) == 0
    with engine.connect() as conn:
        ev = {r.event_id: json.loads(r.event_json) for r in conn.execute(sa.select(signal_events))}
    assert f"order:{cid}:filled" in ev and "risk:cycle:1:halted" in ev
    assert ev["fill:ex-2"]["lineage"]["mlflow_run_id"] == "run-42"
    assert ev["fill:ex-2"]["facts"]["chart"]["points"][-1][1] == pytest.approx(50.0, abs=1e-9)
    writer.close()
