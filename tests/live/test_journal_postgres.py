"""The live journal and the runner lock on Postgres (``ALPACA_IMPROVED_DATABASE_URL`` set).

Against a real PostgreSQL 15 that the tests start (``tests/postgres_server.py``; a fresh
database per test): the same runner scenario journals the same rows as on SQLite; the CLI's
halt/flatten/status/resume and the pipelines' monitoring reader read the Postgres journal; a
runner SIGKILLed between the journal commit and the broker call sends nothing twice and a
restart adds no order event; the advisory lock refuses a second runner on the same journal (even
from another data root) and the server releases it when a runner is SIGKILLed; an unreachable
database is one line with the password redacted, and no password appears in any output.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from typer.testing import CliRunner

from contracts.database import DATABASE_ENV, JOURNAL_SCHEMA_ENV, parse_database_url
from live.book import Ledger
from live.cli import app
from live.journal import orders as jo
from live.journal.pg import JournalUnavailable, PgJournal, open_journal, translate
from live.journal.store import Journal
from live.orders.reports import ActivityReport, OrderStatus
from live.runner.lock import RunnerLocked, runner_lock
from live.runner.pg_lock import PgAdvisoryLock
from tests.fakes.alpaca_broker import FakeAlpacaBroker
from tests.live.helpers import KEY, SECRET, T0, equity_ticket
from tests.live.procs import cli_env, live_cli, start_live
from tests.live.runner_setup import (
    LAST_CLOSE,
    MONDAY_10,
    kill_switch_and_flatten,
    make_home,
    sim_runner,
    wait_for,
)

TABLES = ("meta", "deployments", "decisions", "intents", "orders", "order_events", "fills",
          "positions", "activities", "cycles", "commands")  # fmt: skip


def dump(j: Journal) -> dict[str, list[dict[str, Any]]]:
    """Every journal table as rows (SQLite's columns, insertion order)."""
    out = {}
    for table in TABLES:
        order = "rowid" if table in ("orders", "fills") else "1"
        rows = [dict(r) for r in j.rows(f"SELECT * FROM {table} ORDER BY {order}")]  # noqa: S608
        out[table] = [{k: v for k, v in r.items() if k != "rowid"} for r in rows]
    return out


def pg_count(url: str, table: str, schema: str = "live") -> int:
    db = parse_database_url(url)
    con = psycopg2.connect(**db.libpq_kwargs(schema))  # type: ignore[arg-type]
    try:
        with con.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
            return int(cur.fetchone()[0])
    finally:
        con.close()


def test_the_dialect_translates_each_sqlite_form() -> None:
    assert translate("BEGIN IMMEDIATE") == ("BEGIN", False)
    assert translate("SELECT a FROM t WHERE b=? AND c LIKE 'x%'") == (
        "SELECT a FROM t WHERE b=%s AND c LIKE 'x%%'",
        False,
    )
    assert translate("INSERT OR IGNORE INTO fills VALUES(?,?)") == (
        "INSERT INTO fills VALUES(%s,%s) ON CONFLICT DO NOTHING",
        False,
    )
    sql, returning = translate("INSERT INTO cycles(started_at, state) VALUES(?, ?)")
    assert sql.endswith(" RETURNING seq") and returning
    sql, _ = translate("INSERT OR REPLACE INTO positions VALUES(?,?,?,?,?,?)")
    assert "ON CONFLICT (deployment_id, symbol) DO UPDATE SET qty=EXCLUDED.qty" in sql
    with pytest.raises(ValueError, match="no conflict key"):
        translate("INSERT OR REPLACE INTO orders VALUES(?)")


def test_transactions_conflicts_and_a_read_only_reader(postgres_url: str) -> None:
    db = parse_database_url(postgres_url)
    j = PgJournal(db, "live")
    t = equity_ticket()
    jo.record_decision(j, "dep-one", "2024-03-01", T0, [(0, t.intent, t.client_order_id)], T0)
    with pytest.raises(psycopg2.IntegrityError):
        jo.record_decision(j, "dep-one", "2024-03-01", T0, [], T0)
    assert len(jo.list_orders(j)) == 1  # the failed transaction left nothing behind
    with j.tx(), j.tx():  # an empty, nested transaction
        pass
    fills = [jo.FillRow(e, None, "d", "SPY", "us_equity", q, 100.0, T0)
             for e, q in (("e1", 10), ("e2", -4), ("e1", 10))]  # fmt: skip
    assert [f.exec_id for f in jo.record_fills(j, fills)] == ["e1", "e2"]  # deduplicated
    ledger = Ledger.from_fills(jo.all_fills(j))
    jo.upsert_positions(j, ledger, [("d", "SPY")], T0)
    jo.upsert_positions(j, ledger, [("d", "SPY")], T0)  # replaced in place, not duplicated
    assert jo.saved_positions(j) == {("d", "SPY"): 6.0}
    act = ActivityReport("a1", "OPEXP", "SPY240315C00500000", 1.0, T0.date())
    assert jo.record_activity(j, act, T0) and not jo.record_activity(j, act, T0)
    assert j.start_cycle(T0, "active") == 1 and j.enqueue_command("halt", T0) == 1
    reader = PgJournal(db, "live", readonly=True)
    assert jo.list_orders(reader) == jo.list_orders(j) and reader.decided("dep-one", "2024-03-01")
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        reader.enqueue_command("halt", T0)
    with pytest.raises(FileNotFoundError, match="no journal in schema other"):
        PgJournal(db, "other", readonly=True)
    reader.close()
    j.close()


def test_a_runner_cycle_journals_the_same_rows_as_on_sqlite(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_sqlite = sim_runner(make_home(tmp_path / "sqlite"))
    on_sqlite.run(cycles=2)
    expected = dump(on_sqlite.j)
    on_sqlite.lock.release()  # type: ignore[union-attr]

    monkeypatch.setenv(DATABASE_ENV, postgres_url)
    home = make_home(tmp_path / "pg")
    runner = sim_runner(home)
    assert isinstance(runner.j, PgJournal)
    runner.run(cycles=2)
    got = dump(runner.j)
    assert not (home / "live" / "journal.sqlite").exists()  # nothing on the local disk
    (order,) = jo.list_orders(runner.j)
    assert order.status is OrderStatus.FILLED and order.filled_qty > 0
    assert [e["status"] for e in got["order_events"]] == [
        e["status"] for e in expected["order_events"]
    ]
    assert got["fills"] and got["positions"] and got["cycles"]
    for table in TABLES:  # the same rows, column for column (the sim broker's ids aside)
        for row in (*got[table], *expected[table]):
            row.pop("broker_id", None), row.pop("exec_id", None)
        assert got[table] == expected[table], table
    assert pg_count(postgres_url, "orders") == 1
    runner.lock.release()  # type: ignore[union-attr]
    runner.j.close()


def test_control_commands_and_status_read_the_postgres_journal(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(DATABASE_ENV, postgres_url)
    home = make_home(tmp_path)
    journal = open_journal(home)  # a second connection, like the CLI's
    runner, status = kill_switch_and_flatten(home, journal)
    assert status["state"] == "halted" and status["positions"] == []
    assert status["runner"]["running"] is True  # the probe saw the advisory lock held
    commands = [r["command"] for r in journal.rows("SELECT command FROM commands ORDER BY id")]
    assert commands == ["halt", "flatten", "resume"]
    flat = [o for o in jo.list_orders(journal) if o.intent.tag == "flatten"]
    assert len(flat) == 1 and flat[0].status is OrderStatus.FILLED
    runner.lock.release()  # type: ignore[union-attr]
    status = json.loads(CliRunner().invoke(app, ["status", "--home", str(home)]).stdout)
    assert status["runner"]["running"] is False  # the probe sees the released lock
    journal.close()

    from alpaca_improved_pipelines.defs.monitoring.journal_io import read_table

    fills = read_table(home, "fills")
    assert fills.height == 2 and "rowid" not in fills.columns
    assert fills["qty"].sum() == pytest.approx(0.0, abs=1e-9)  # bought, then flattened
    assert read_table(home, "orders")["status"].to_list() == ["filled", "filled"]


@pytest.mark.slow
def test_kill_9_between_commit_and_send_then_restart_sends_once(
    postgres_url: str, tmp_path: Path
) -> None:
    home = make_home(tmp_path)
    with FakeAlpacaBroker(api_key=KEY, secret_key=SECRET) as fake:
        fake.market_ts, fake.prices["SPY"] = MONDAY_10, LAST_CLOSE
        args = ("run", "--broker", "alpaca", "--home", str(home), "--cycles", "3",
                "--cycle-seconds", "0.05")  # fmt: skip
        env = {**cli_env(fake.url), DATABASE_ENV: postgres_url}
        killed = live_cli(*args, env={**env, "ALPACA_IMPROVED_CRASH_AT": "before_send"})
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
        assert fake.orders == {}  # the decision was journaled, nothing reached the broker
        assert pg_count(postgres_url, "orders") == 1
        clean = live_cli(*args, env=env)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        events = pg_count(postgres_url, "order_events")
        again = live_cli(*args, env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert pg_count(postgres_url, "order_events") == events  # a restart changes nothing
        cids = [o["client_order_id"] for o in fake.orders.values()]
    assert len(cids) == len(set(cids)) == 1  # sent exactly once
    db = parse_database_url(postgres_url)
    j = PgJournal(db, "live", readonly=True)
    (order,) = jo.list_orders(j)
    assert order.client_order_id == cids[0] and order.status is OrderStatus.FILLED
    j.close()
    output = killed.stdout + killed.stderr + clean.stdout + clean.stderr + again.stdout
    assert db.password not in output and SECRET not in output
    assert not (home / "live" / "journal.sqlite").exists()


@pytest.mark.slow
def test_the_advisory_lock_refuses_a_second_runner_and_dies_with_the_first(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home, other = make_home(tmp_path / "a"), make_home(tmp_path / "b")
    env = {**cli_env(), DATABASE_ENV: postgres_url}
    first = start_live(
        "run", "--home", str(home), "--cycle-seconds", "1", "--sim-speed", "1",
        log=tmp_path / "first.log", env=env,
    )  # fmt: skip
    monkeypatch.setenv(DATABASE_ENV, postgres_url)
    lock = runner_lock(other)  # another data root, the same journal schema
    try:
        log = tmp_path / "first.log"
        wait_for(lambda: lock.probe().held or first.poll() is not None, "the first runner", 30)
        assert first.poll() is None, log.read_text()
        refused = live_cli("run", "--home", str(other), "--cycles", "1", env=env)
        assert refused.returncode == 2
        lines = refused.stderr.strip().splitlines()
        assert (
            len(lines) == 1 and "another live runner holds the journal in schema live" in lines[0]
        )
        assert f"pid {first.pid}" in lines[0] and "***" in lines[0]
        with pytest.raises(RunnerLocked):  # in-process too
            lock.acquire({"pid": 0})
        # another schema is another journal: its lock is free
        other_schema = PgAdvisoryLock(parse_database_url(postgres_url), "live_two")
        other_schema.acquire({"pid": 0})
        other_schema.release()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert first.returncode == -signal.SIGKILL
    # the server ends the dead session and drops its lock
    wait_for(lambda: not lock.probe().held, "the killed runner's lock to be released", 10)
    after = sim_runner(other)  # a new runner on the same journal starts
    after.run(cycles=1)
    assert isinstance(after.lock, PgAdvisoryLock) and after.lock.probe().held
    assert after.lock.probe().holder["pid"] == os.getpid()  # type: ignore[index]
    after.close()
    password = parse_database_url(postgres_url).password
    assert password not in (tmp_path / "first.log").read_text() + refused.stderr


def test_a_runner_whose_lock_session_ends_stops_before_sending(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(DATABASE_ENV, postgres_url)
    runner = sim_runner(make_home(tmp_path))
    runner.run(cycles=1)
    assert isinstance(runner.lock, PgAdvisoryLock)
    runner.lock.check()  # alive: nothing happens
    db = parse_database_url(postgres_url)
    admin = psycopg2.connect(**db.libpq_kwargs())  # type: ignore[arg-type]
    admin.autocommit = True
    with admin.cursor() as cur:  # what a database restart does to the lock's session
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND mode = 'ExclusiveLock' AND pid <> pg_backend_pid()"
        )
        assert cur.fetchall() == [(True,)]
    admin.close()
    cycles = len(runner.j.rows("SELECT seq FROM cycles"))
    with pytest.raises(RunnerLocked, match="lost the runner lock") as err:
        runner.cycle()
    assert db.password not in str(err.value) and "***" in str(err.value)
    assert len(runner.j.rows("SELECT seq FROM cycles")) == cycles  # stopped before the cycle
    runner.lock.release()
    runner.j.close()


def test_an_unreachable_database_is_one_redacted_line(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://trader:n0t-Shown-pw@127.0.0.1:{port}/journal"
    monkeypatch.setenv(DATABASE_ENV, url)
    with pytest.raises(JournalUnavailable) as err:
        open_journal(tmp_path)
    assert "n0t-Shown-pw" not in str(err.value) and "trader:***@127.0.0.1" in str(err.value)
    home = make_home(tmp_path)
    for args in (["run", "--home", str(home), "--cycles", "1"], ["status", "--home", str(home)],
                 ["halt", "--home", str(home)]):  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error:") and DATABASE_ENV in line and "***" in line
        assert "n0t-Shown-pw" not in result.output
    assert (home / "live" / "HALT").is_file()  # the halt file works without the database
    assert not (home / "live" / "journal.sqlite").exists()
    monkeypatch.setenv(JOURNAL_SCHEMA_ENV, "Bad-Name")
    with pytest.raises(ValueError, match=JOURNAL_SCHEMA_ENV):
        open_journal(tmp_path)
