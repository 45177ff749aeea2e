"""``signals outbox status | dead | requeue``: the dead-letter runbook from the command line, on
a real SQLite signals database, with the requeue audited in the hash chain."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from signals import cli as signals_cli
from signals.audit import verify
from signals.db import make_engine, outbox
from signals.fanout import fan_out
from tests.signals.outbox_fixtures import T0, add_plan, add_subscribers, event, realtime_plan


def cli(home: Path, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(signals_cli.app, [*args, "--home", str(home)])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Four rows (a channel post, three DMs); rows 2 and 3 dead-lettered for different reasons."""
    monkeypatch.delenv("ALPACA_IMPROVED_DATABASE_URL", raising=False)
    engine = make_engine(tmp_path, environ={})
    add_plan(engine, realtime_plan())
    add_subscribers(engine, "rt", 3)
    with engine.begin() as conn:
        assert fan_out(conn, [event()], T0) == 4
        for row_id, why in ((2, "permanent: chat not found"), (3, "blocked: bot was blocked")):
            conn.execute(
                sa.update(outbox)
                .where(outbox.c.id == row_id)
                .values(status="dead", attempts=5, last_error=why)
            )
    engine.dispose()
    return tmp_path


def statuses(home: Path) -> dict[int, tuple[str, int]]:
    engine = make_engine(home, environ={})
    with engine.connect() as conn:
        got = {r.id: (r.status, r.attempts) for r in conn.execute(sa.select(outbox))}
    engine.dispose()
    return got


def test_status_and_dead_list_what_the_database_holds(home: Path) -> None:
    code, out, _ = cli(home, "outbox", "status")
    assert code == 0
    assert out.split() == ["dead", "2", "pending", "2"]
    code, out, _ = cli(home, "outbox", "dead")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].startswith("#3 ") and "blocked: bot was blocked" in lines[0]
    assert lines[1].startswith("#2 ") and "attempts=5" in lines[1]


def test_requeue_needs_an_explicit_selection_and_changes_nothing_without_one(home: Path) -> None:
    before = statuses(home)
    code, _, err = cli(home, "outbox", "requeue")
    assert code == 2 and "--id" in err and "--all" in err
    code, _, err = cli(home, "outbox", "requeue", "--id", "2", "--all")
    assert code == 2 and "exclude" in err
    assert statuses(home) == before


def test_requeue_by_id_resets_only_that_row_and_is_audited(home: Path) -> None:
    code, out, _ = cli(home, "outbox", "requeue", "--id", "2")
    assert code == 0 and out.strip() == "requeued 1 dead letter"
    got = statuses(home)
    assert got[2] == ("pending", 0) and got[3] == ("dead", 5)
    code, out, _ = cli(home, "audit", "tail", "-n", "1")
    assert code == 0 and "outbox requeue --id 2 allowed" in out
    engine = make_engine(home, environ={})
    assert verify(engine, home).ok
    engine.dispose()


def test_requeue_all_filtered_by_reason(home: Path) -> None:
    code, out, _ = cli(home, "outbox", "requeue", "--all", "--reason-like", "permanent")
    assert code == 0 and out.strip() == "requeued 1 dead letter"
    assert statuses(home)[2][0] == "pending" and statuses(home)[3][0] == "dead"
    code, out, _ = cli(home, "outbox", "requeue", "--all")
    assert code == 0 and out.strip() == "requeued 1 dead letter"
    code, out, _ = cli(home, "outbox", "dead")
    assert out.strip() == "no dead letters"
