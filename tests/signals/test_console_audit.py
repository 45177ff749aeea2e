"""The operator console against a real journal and a real halt, and the audit chain it writes.

The journal is written with ``live.journal``'s own APIs (deployments, fills, positions, risk
reasons), the halt goes through ``live.runner.control`` (the halt file and the journaled
command), roles come from the real signals database, and tampering is done with plain SQL on
the SQLite file, then caught by ``alpaca-improved audit verify`` run as a subprocess.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from contracts import paths
from live.journal.orders import FillRow, record_fills, save_positions
from live.journal.store import Journal
from live.runner import control
from live.runner.lock import runner_lock
from signals import cli as signals_cli
from signals.audit import GENESIS, AuditLog, anchor_path, entry_hash, verify
from signals.console import MAX_CHARS, OperatorConsole, fit
from signals.db import audit_log, make_engine, plans, subscribers, subscriptions
from signals.entitlements import plan_to_json
from signals.interfaces import Console, ConsoleReply
from signals.model import Channel, Plan, Tier

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
OPERATOR, SUBSCRIBER, STRANGER, DISCORD_OP = "1001", "2002", "3003", "4004"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw7"  # token-shaped, never a real one
ENV = {"TELEGRAM_OPERATOR_IDS": "", "DISCORD_OPERATOR_IDS": DISCORD_OP}


class Clock:
    """A settable clock: the console's confirmation expiry reads it."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def _embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ALPACA_IMPROVED_DATABASE_URL", "ALPACA_IMPROVED_LAKE_URI"):
        monkeypatch.delenv(var, raising=False)


def write_journal(home: Path) -> None:
    """Two deployments, fills, positions and a REDUCING reason, through the journal's APIs."""
    j = Journal(paths.journal_path(home))
    try:
        for dep in ("ma-spy", "ma-qqq"):
            manifest = {
                "manifest_id": f"m-{dep}", "strategy": "ma_crossover",
                "risk_limits": {"max_daily_loss": 5000.0, "max_open_orders": 20},
            }  # fmt: skip
            j.upsert_deployment(dep, manifest, "fp", T0)
        fills = [
            FillRow("e1", "c1", "ma-spy", "SPY", "us_equity", 10.0, 500.0, T0),
            FillRow("e2", "c2", "ma-spy", "SPY", "us_equity", -4.0, 510.0, T0 + timedelta(1)),
            FillRow("e3", "c3", "ma-qqq", "QQQ", "us_equity", 5.0, 400.0, T0),
            FillRow("e4", "c4", "ma-qqq", "QQQ", "us_equity", 1.0, 390.0, T0 + timedelta(1)),
        ]
        record_fills(j, fills)
        save_positions(
            j, {("ma-spy", "SPY"): (6.0, 500.0, "us_equity"),
                ("ma-qqq", "QQQ"): (6.0, 398.3333, "us_equity")}, T0,
        )  # fmt: skip
        j.set_meta("risk_reasons", {"ma-spy": {"daily_loss": "reducing"}})
    finally:
        j.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    write_journal(tmp_path)
    engine = make_engine(tmp_path, {})
    with engine.begin() as conn:
        conn.execute(
            sa.insert(subscribers),
            [
                {"subscriber_id": "op", "created_at": T0, "role": "operator",
                 "telegram_user_id": int(OPERATOR), "discord_user_id": None},
                {"subscriber_id": "sub", "created_at": T0, "role": "subscriber",
                 "telegram_user_id": int(SUBSCRIBER), "discord_user_id": "5005"},
            ],
        )  # fmt: skip
    engine.dispose()
    return tmp_path


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def console(home: Path, clock: Clock) -> OperatorConsole:
    return OperatorConsole(home, make_engine(home, {}), environ=ENV, clock=clock)


def entries(console: OperatorConsole) -> list[dict]:
    with console.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(audit_log).order_by("seq"))]


def queued(home: Path) -> list[str]:
    j = Journal(paths.journal_path(home), readonly=True)
    try:
        return [r["command"] for r in j.rows("SELECT command FROM commands ORDER BY id")]
    finally:
        j.close()


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def cli(home: Path, *args: str) -> Ran:
    """``python -m signals.cli <args> --home <home>``, in-process (typer's runner)."""
    r = CliRunner().invoke(signals_cli.app, [*args, "--home", str(home)])
    return Ran(r.exit_code, r.stdout, r.stderr)


def alpaca(home: Path, *args: str) -> Ran:
    """``alpaca-improved <args>`` in a subprocess: the pipelines' CLI execs ``signals.cli``."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "ALPACA_IMPROVED_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-m", "alpaca_improved_pipelines.cli", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip
    return Ran(out.returncode, out.stdout, out.stderr)


# -- authorization, confirmation, the real halt -----------------------------------------------
def test_operator_halt_needs_a_confirmation_then_writes_the_halt_file_and_queues_it(
    console: OperatorConsole, home: Path
) -> None:
    first = console.handle("telegram", OPERATOR, "/halt@alpaca_bot")
    assert first.allowed and first.confirm_token and len(first.confirm_token) >= 20
    assert not control.halt_path(home).exists(), "nothing may happen before the confirmation"
    assert queued(home) == []
    done = console.handle("telegram", OPERATOR, "/halt", confirm_token=first.confirm_token)
    assert done.allowed and done.confirm_token is None
    assert control.halt_path(home).is_file()
    assert control.read_halt(home) is not None
    assert queued(home) == ["halt"]
    assert "halt file" in done.text and "no live runner is running" in done.text
    log = entries(console)
    assert [(e["command"], e["allowed"]) for e in log] == [("/halt", True), ("/halt", True)]
    assert log[0]["outcome"].startswith("confirmation requested")
    assert log[1]["outcome"].startswith("confirmed and done: no live runner")
    assert first.confirm_token not in str(log), "the token is never audited"
    # resume goes through the same two steps and removes the file
    r = console.handle("discord", DISCORD_OP, "resume")  # the Discord allow-list
    assert r.confirm_token
    console.handle("discord", DISCORD_OP, "resume", confirm_token=r.confirm_token)
    assert not control.halt_path(home).exists()
    assert queued(home) == ["halt", "resume"]


def test_subscribers_and_strangers_are_refused_and_audited(
    console: OperatorConsole, home: Path
) -> None:
    refusals = [
        console.handle("telegram", SUBSCRIBER, "/halt"),
        console.handle("telegram", STRANGER, "/status"),
        console.handle("discord", "5005", "/flatten"),  # the subscriber's Discord id
        console.handle("discord", "9999", "/halt"),
        console.handle("telegram", "not-a-number", "/halt"),
    ]
    assert all(not r.allowed and r.confirm_token is None for r in refusals)
    assert "subscriber, not an operator" in refusals[0].text
    assert "not known here" in refusals[1].text
    assert "subscriber, not an operator" in refusals[2].text  # the same person on Discord
    assert not control.halt_path(home).exists() and queued(home) == []
    log = entries(console)
    assert len(log) == 5 and not any(e["allowed"] for e in log)
    assert [e["user_id"] for e in log] == [SUBSCRIBER, STRANGER, "5005", "9999", "not-a-number"]
    unknown = console.handle("telegram", OPERATOR, "/sell_everything", "now")
    assert not unknown.allowed and "unknown command" in unknown.text
    assert entries(console)[-1]["command"] == "/sell_everything"


def test_a_token_works_once_for_its_user_and_command_until_it_expires(
    console: OperatorConsole, home: Path, clock: Clock
) -> None:
    # reused
    t = console.handle("telegram", OPERATOR, "/flatten").confirm_token
    assert console.handle("telegram", OPERATOR, "/flatten", confirm_token=t).allowed
    again = console.handle("telegram", OPERATOR, "/flatten", confirm_token=t)
    assert not again.allowed and "already used" in again.text
    assert queued(home) == ["flatten"]
    # another user (even an operator) cannot use it; its owner still can
    t = console.handle("telegram", OPERATOR, "/halt").confirm_token
    other = console.handle("discord", DISCORD_OP, "/halt", confirm_token=t)
    assert not other.allowed and "another user" in other.text
    assert not control.halt_path(home).exists()
    # a token for /halt does not confirm /resume
    wrong = console.handle("telegram", OPERATOR, "/resume", confirm_token=t)
    assert not wrong.allowed and "was for /halt" in wrong.text
    # expired: 60 s after it was issued
    clock.now += timedelta(seconds=60)
    late = console.handle("telegram", OPERATOR, "/halt", confirm_token=t)
    assert not late.allowed and "expired" in late.text
    assert not control.halt_path(home).exists() and queued(home) == ["flatten"]
    # a made-up token
    forged = console.handle("telegram", OPERATOR, "/halt", confirm_token="x" * 22)
    assert not forged.allowed and "unknown" in forged.text
    # just inside the window works
    t = console.handle("telegram", OPERATOR, "/halt").confirm_token
    clock.now += timedelta(seconds=59)
    assert console.handle("telegram", OPERATOR, "/halt", confirm_token=t).allowed
    assert control.halt_path(home).is_file() and queued(home) == ["flatten", "halt"]
    log = entries(console)
    refused = [e["outcome"] for e in log if not e["allowed"]]
    assert len(refused) == 5 and all(o.startswith("refused:") for o in refused)


# -- the read commands reflect the journal ----------------------------------------------------
def test_status_positions_and_pnl_reflect_the_journal(console: OperatorConsole) -> None:
    status = console.handle("telegram", OPERATOR, "/status")
    assert status.allowed
    assert "State: reducing" in status.text
    assert "reducing daily_loss (ma-spy)" in status.text
    assert "Runner: not running" in status.text
    assert "ma-qqq ma_crossover (m-ma-qqq, active)" in status.text
    assert "max_daily_loss=5,000.00" in status.text
    assert "fills 4" in status.text
    runner: Any = status.data["runner"]
    assert runner["running"] is False
    pos = console.handle("telegram", OPERATOR, "/positions")
    assert "ma-spy SPY 6 @ 500.0000" in pos.text and "ma-qqq QQQ 6 @ 398.3333" in pos.text
    pnl = console.handle("telegram", OPERATOR, "/pnl")
    j: Any = pnl.data["journal"]
    # SPY: bought 10 @ 500, sold 4 @ 510 -> realized 40, 6 left marked at 510 -> 60 unrealized
    assert j["ma-spy"]["realized"] == pytest.approx(40.0, abs=1e-9)
    assert j["ma-spy"]["unrealized"] == pytest.approx(60.0, abs=1e-9)
    # QQQ: 5 @ 400 + 1 @ 390 (avg 398.333), marked at 390 -> -50, nothing realized
    assert j["ma-qqq"]["realized"] == pytest.approx(0.0, abs=1e-9)
    assert j["ma-qqq"]["unrealized"] == pytest.approx(-50.0, abs=1e-6)
    assert "ma-spy: realized 40.00 unrealized 60.00" in pnl.text


def test_status_and_halt_name_the_runner_that_holds_the_data_root(
    console: OperatorConsole, home: Path
) -> None:
    lock = runner_lock(home)
    lock.acquire({"pid": 4242, "host": "runner-host", "started_at": "2026-03-02T14:00:00+00:00"})
    try:
        status = console.handle("telegram", OPERATOR, "/status")
        assert "Runner: running (pid 4242 on host runner-host" in status.text
        token = console.handle("telegram", OPERATOR, "/halt").confirm_token
        done = console.handle("telegram", OPERATOR, "/halt", confirm_token=token)
        assert "the running runner (pid 4242 on host runner-host" in done.text
        assert "HALTED at its next cycle" in done.text
    finally:
        lock.release()
    status = console.handle("telegram", OPERATOR, "/status")
    assert "Runner: not running" in status.text and "Halt file: present (live halt" in status.text
    assert "Command #1 halt at" in status.text and "pending" in status.text


def test_pnl_shows_the_lakes_last_live_pnl_session_beside_the_journal(
    console: OperatorConsole, home: Path
) -> None:
    for session, day_pnl in (("2026-03-02", 12.5), ("2026-03-03", -7.25)):
        part = home / "lake" / "live_pnl" / f"session={session}"
        part.mkdir(parents=True)
        pl.DataFrame(
            {"deployment_id": ["ma-spy"], "session": [date.fromisoformat(session)],
             "market_value": [3060.0], "cash_flow": [0.0], "pnl": [day_pnl],
             "realized_pnl": [40.0], "unrealized_pnl": [55.0], "collateral": [0.0]}
        ).write_parquet(part / "part.parquet")  # fmt: skip
    reply = console.handle("telegram", OPERATOR, "/pnl")
    assert "Lake live_pnl at the close of 2026-03-03" in reply.text
    assert "ma-spy: day -7.25 realized 40.00 unrealized 55.00" in reply.text
    lake: Any = reply.data["lake"]
    assert lake["rows"]["ma-spy"]["pnl"] == pytest.approx(-7.25, abs=1e-12)


def test_read_commands_without_a_journal_answer_in_one_line(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, {})
    console = OperatorConsole(tmp_path, engine, environ={"TELEGRAM_OPERATOR_IDS": OPERATOR})
    reply = console.handle("telegram", OPERATOR, "/status")
    assert reply.allowed and "no journal at" in reply.text and "\n" not in reply.text
    assert not paths.journal_path(tmp_path).exists(), "a read command creates nothing"


def test_long_answers_fit_a_telegram_message_and_say_they_were_cut() -> None:
    text = "\n".join(f"line {k} " + "x" * 60 for k in range(200))
    out = fit(text)
    assert len(out) <= MAX_CHARS and "truncated" in out and out.startswith("line 0 ")
    assert fit("short") == "short"
    one_line = fit("y" * 10_000)
    assert (
        len(one_line) <= MAX_CHARS and one_line.startswith("y" * 3000) and "truncated" in one_line
    )
    exact = "\n".join("z" * 99 for _ in range(41))  # 4099 characters: one line too many
    cut = fit(exact)
    assert len(cut) <= MAX_CHARS and cut.endswith("(full: alpaca-improved live status)")
    assert cut.count("z" * 99) < 41


def test_a_real_status_with_many_deployments_stays_within_the_limit(tmp_path: Path) -> None:
    j = Journal(paths.journal_path(tmp_path))
    for k in range(150):
        j.upsert_deployment(f"dep-{k:03d}", {"strategy": "ma_crossover"}, "fp", T0)
    j.close()
    console = OperatorConsole(
        tmp_path, make_engine(tmp_path, {}), environ={"TELEGRAM_OPERATOR_IDS": OPERATOR}
    )
    reply = console.handle("telegram", OPERATOR, "/status")
    assert len(reply.text) <= MAX_CHARS and "truncated" in reply.text
    assert len(reply.text) > 4000, "whole lines up to the limit, not a stub"
    console.allow[Channel.DISCORD] = frozenset({DISCORD_OP})
    on_discord = console.handle("discord", DISCORD_OP, "/status")
    assert len(on_discord.text) <= 2000 and "truncated" in on_discord.text


# -- the audit chain --------------------------------------------------------------------------
def fifty_mixed(console: OperatorConsole) -> None:
    users = [("telegram", OPERATOR), ("telegram", SUBSCRIBER), ("telegram", STRANGER),
             ("discord", DISCORD_OP)]  # fmt: skip
    cmds = ["/status", "/positions", "/pnl", "/halt", "/resume", "/nope"]
    n = 0
    while n < 50:
        platform, user = users[n % len(users)]
        reply = console.handle(platform, user, cmds[n % len(cmds)], f"arg {n}")
        n += 1
        if reply.confirm_token and n < 50:
            console.handle(platform, user, cmds[(n - 1) % len(cmds)], "", reply.confirm_token)
            n += 1


@pytest.mark.parametrize("tamper", ["edit_outcome", "delete_middle", "swap_two", "forge_hash",
                                    "truncate_tail"])  # fmt: skip
def test_the_chain_verifies_after_fifty_commands_and_audit_verify_names_a_tampered_seq(
    console: OperatorConsole, home: Path, tamper: str
) -> None:
    fifty_mixed(console)
    assert verify(console.engine, home).ok
    ok = cli(home, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "audit chain OK: 50 entries"
    db = sqlite3.connect(home / "signals" / "signals.sqlite")
    with db:
        if tamper == "edit_outcome":
            db.execute("UPDATE audit_log SET outcome = 'answered: nothing' WHERE seq = 17")
            bad = 17
        elif tamper == "delete_middle":
            db.execute("DELETE FROM audit_log WHERE seq = 25")
            bad = 25
        elif tamper == "swap_two":
            cols = "ts, platform, user_id, command, args, allowed, outcome, prev_hash, hash"
            r30 = db.execute(f"SELECT {cols} FROM audit_log WHERE seq = 30").fetchone()
            r31 = db.execute(f"SELECT {cols} FROM audit_log WHERE seq = 31").fetchone()
            sets = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
            db.execute(f"UPDATE audit_log SET {sets} WHERE seq = 30", r31)
            db.execute(f"UPDATE audit_log SET {sets} WHERE seq = 31", r30)
            bad = 30
        elif tamper == "forge_hash":  # edit and re-hash one entry: the next one's link breaks
            row = AuditLog(console.engine).tail(50)[9]  # seq 10
            fields = {**row.fields(), "outcome": "answered: all fine"}
            db.execute("UPDATE audit_log SET outcome = ?, hash = ? WHERE seq = 10",
                       (fields["outcome"], entry_hash(fields, row.prev_hash)))  # fmt: skip
            bad = 11
        else:  # the chain alone cannot see its tail cut: the anchor file can
            db.execute("DELETE FROM audit_log WHERE seq >= 48")
            bad = 48
    db.close()
    # one case end to end through `alpaca-improved audit verify` (exec), the rest in-process
    out = (
        alpaca(home, "audit", "verify")
        if tamper == "delete_middle"
        else cli(home, "audit", "verify")
    )
    assert out.returncode == 1, out.stdout
    assert f"audit chain BROKEN at seq {bad}:" in out.stderr
    assert verify(console.engine, home).first_bad_seq == bad
    if tamper == "truncate_tail":
        assert verify(console.engine).ok, "without the anchor the cut chain is consistent"
        assert "truncated" in out.stderr


def test_two_threads_appending_at_once_keep_one_chain(home: Path) -> None:
    engines = [make_engine(home, {}) for _ in range(2)]
    logs = [AuditLog(e, home, environ={}) for e in engines]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        start.wait()
        try:
            for i in range(40):
                logs[k].append("telegram", str(k), "/status", f"w{k}-{i}", True, "answered")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    result = verify(engines[0], home)
    assert result.ok and result.n_entries == 80, result
    rows = logs[0].tail(80)
    assert [e.seq for e in rows] == list(range(1, 81))
    assert rows[0].prev_hash == GENESIS
    assert {e.args for e in rows} == {f"w{k}-{i}" for k in range(2) for i in range(40)}
    anchored = anchor_path(home).read_text().splitlines()
    assert sorted(int(line.split()[0]) for line in anchored) == list(range(1, 81))


def test_no_token_like_string_from_args_lands_in_an_entry(home: Path) -> None:
    secret = "env-secret-value-0123"  # a secret of the process, whatever its shape
    env = {**ENV, "STRIPE_API_KEY": secret, "TELEGRAM_OPERATOR_IDS": OPERATOR}
    console = OperatorConsole(home, make_engine(home, {}), environ=env)
    args = [
        f"token={BOT_TOKEN}", f"--key {secret}", "sk_live_51HxYzAbCdEfGh1234567890",
        "Bearer abc.def.ghi-jklmno", "whsec_0123456789abcdef", "Zx9" * 10,
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV",
    ]  # fmt: skip
    for a in args:
        console.handle("telegram", OPERATOR, "/status", a)
        console.handle("telegram", STRANGER, f"/x {BOT_TOKEN}", a)
    dump = repr(entries(console))
    leaks = (BOT_TOKEN, secret, "51HxYzAbCdEfGh1234567890", "abc.def.ghi-jklmno",
             "0123456789abcdef", "Zx9Zx9Zx9Zx9", "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV")  # fmt: skip
    for leaked in leaks:
        assert leaked not in dump
    assert "***" in dump
    assert verify(console.engine).ok


def test_cli_subscribers_add_grant_list_show_and_tail(home: Path) -> None:
    added = cli(home, "subscribers", "add", "--telegram-user-id", "777", "--discord-user-id", "888")
    assert added.returncode == 0, added.stderr
    sid = added.stdout.split()[2]
    assert sid.startswith("sub_")
    dup = cli(home, "subscribers", "add", "--telegram-user-id", "777")
    assert dup.returncode == 2 and f"already subscriber {sid}" in dup.stderr
    assert cli(home, "subscribers", "add").returncode == 2
    granted = cli(home, "subscribers", "grant-operator", "--telegram-user-id", "777")
    assert granted.returncode == 0 and f"subscriber {sid} is now operator" in granted.stdout
    listing = alpaca(home, "subscribers", "list")  # through the top-level CLI
    assert listing.returncode == 0, listing.stderr
    line = next(x for x in listing.stdout.splitlines() if x.startswith(sid))
    assert "777" in line and "888" in line and "operator" in line
    assert "3 subscribers" in listing.stdout
    # the new operator is an operator for the console now
    console = OperatorConsole(home, make_engine(home, {}), environ={})
    assert console.handle("discord", "888", "/status").allowed
    revoked = cli(home, "subscribers", "revoke-operator", sid)
    assert revoked.returncode == 0
    assert not console.handle("discord", "888", "/status").allowed
    shown = cli(home, "subscribers", "show", sid)
    assert shown.returncode == 0 and "role subscriber" in shown.stdout
    assert cli(home, "subscribers", "show", "nobody").returncode == 2
    tail = cli(home, "audit", "tail", "-n", "4")
    lines = tail.stdout.splitlines()
    assert tail.returncode == 0 and len(lines) == 4, tail.stderr
    assert "cli:" in lines[0] and "subscribers grant-operator" in lines[0]
    assert "discord:888 /status allowed" in lines[1]
    assert "REFUSED" in lines[3] and "discord:888 /status" in lines[3]
    assert cli(home, "audit", "verify").stdout.strip() == "audit chain OK: 4 entries"


def test_subscribers_list_shows_plans_status_entitlement_and_grace(home: Path) -> None:
    engine = make_engine(home, {})
    now = datetime.now(UTC)
    plan = Plan("rt-ma", "ma_crossover", Tier("realtime"), 1500, grace_days=3)
    with engine.begin() as conn:
        conn.execute(sa.insert(plans), [{"plan_id": plan.plan_id, "plan_json": plan_to_json(plan)}])
        conn.execute(
            sa.insert(subscriptions),
            [
                {"subscription_id": "s1", "subscriber_id": "sub", "plan_id": "rt-ma",
                 "provider": "local", "status": "past_due", "updated_at": now,
                 "past_due_since": now - timedelta(days=1)},
                {"subscription_id": "s2", "subscriber_id": "op", "plan_id": "rt-ma",
                 "provider": "local", "status": "canceled", "updated_at": now,
                 "past_due_since": None},
            ],
        )  # fmt: skip
    out = cli(home, "subscribers", "list")
    assert out.returncode == 0, out.stderr
    grace = (now + timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    sub = next(x for x in out.stdout.splitlines() if x.startswith("sub "))
    assert sub.split()[1:] == [SUBSCRIBER, "5005", "subscriber", "rt-ma", "past_due", "yes",
                               *grace.split()]  # fmt: skip
    op = next(x for x in out.stdout.splitlines() if x.startswith("op "))
    assert op.split()[1:] == [OPERATOR, "-", "operator", "rt-ma", "canceled", "no", "-"]
    shown = cli(home, "subscribers", "show", "sub")
    assert "plan rt-ma: past_due, entitled yes" in shown.stdout and grace in shown.stdout


def test_console_reply_is_the_interface_type(console: OperatorConsole) -> None:
    seam: Console = console  # mypy: OperatorConsole implements the Console protocol
    assert isinstance(seam.handle(Channel.TELEGRAM, OPERATOR, "/pnl"), ConsoleReply)


def test_postgres_chain_two_engines_appending_at_once_and_tampering(
    postgres_url: str, tmp_path: Path
) -> None:
    env = {"ALPACA_IMPROVED_DATABASE_URL": postgres_url}
    engines = [make_engine(tmp_path, env) for _ in range(2)]
    assert engines[0].dialect.name == "postgresql"
    logs = [AuditLog(e, tmp_path, environ={}) for e in engines]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        start.wait()
        try:
            for i in range(30):
                logs[k].append("discord", str(k), "/pnl", f"w{k}-{i}", k == 0, "answered")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    result = verify(engines[1], tmp_path)
    assert result.ok and result.n_entries == 60, result
    with engines[0].begin() as conn:
        flip = sa.not_(audit_log.c.allowed)  # a refusal recorded as allowed, or the reverse
        conn.execute(sa.update(audit_log).where(audit_log.c.seq == 33).values(allowed=flip))
    bad = verify(engines[0], tmp_path)
    assert (bad.ok, bad.first_bad_seq, bad.n_entries) == (False, 33, 32), bad
    assert "a field was edited" in bad.reason
    for e in engines:
        e.dispose()
