"""Faults and hostile input at the live runner (issue 15, items 4, 7, 10, 11 and the live CLI's
bad input): real ``python -m live.cli`` subprocesses, real SQLite journals, real lake partitions.

Each test damages or attacks its own temp data root, then checks the one-line answer (exit 2
for refused input), that the culprit is named, and that nothing was lost, half-written or
silently changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live.helpers import deploy
from tests.live.procs import live_cli, start_live
from tests.live.runner_setup import make_home

pytestmark = pytest.mark.slow


def digest(root: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The refusal: exit 2, one ``error:`` line on stderr, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def journal_path(home: Path) -> Path:
    return home / "live" / "journal.sqlite"


def ran_once(home: Path) -> Path:
    """A data root whose runner ran one simulated cycle (and bought SPY) and stopped."""
    proc = live_cli("run", "--broker", "sim", "--home", str(make_home(home)), "--cycles", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return home


def truncate(path: Path) -> None:
    """Cut a file to half its size (a torn copy, a full disk)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def status_json(home: Path) -> dict[str, Any]:
    proc = live_cli("status", "--home", str(home))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes], str]]:
    """A runner on the simulated broker in real time (1 s cycles), with its /health URL."""
    home = make_home(tmp_path / "home")
    log = tmp_path / "runner.log"
    proc = start_live(
        "run", "--broker", "sim", "--home", str(home), "--sim-speed", "1",
        "--cycle-seconds", "1", "--health-port", "0", log=log,
    )  # fmt: skip

    def health_url() -> str | None:
        assert proc.poll() is None, log.read_text()[-3000:]
        lines = [x for x in log.read_text().splitlines() if x.startswith("health: ")]
        return lines[0].removeprefix("health: ").strip() if lines else None

    try:
        url = wait_for(health_url, "the runner's health line")
        wait_for(lambda: health(url).get("cycles", 0) >= 1, "the runner's first cycle")
        yield home, proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback test server
        return json.loads(resp.read())


# -- item 4: one runner per data root ------------------------------------------------------------
def test_a_second_runner_on_the_same_root_refuses_and_names_the_holder(
    running: tuple[Path, subprocess.Popen[bytes], str],
) -> None:
    home, first, _ = running
    second = live_cli("run", "--broker", "sim", "--home", str(home), "--cycles", "1")
    line = one_error_line(second)
    assert "another live runner holds" in line and str(home / "live" / "runner.lock") in line
    assert f"pid {first.pid} on host {socket.gethostname()}, started at 20" in line
    assert first.poll() is None  # the holder keeps running, untouched

    first.send_signal(signal.SIGKILL)  # a crash: the OS releases the lock
    first.wait(30)
    third = live_cli("run", "--broker", "sim", "--home", str(home), "--cycles", "1")
    assert third.returncode == 0, third.stderr[-3000:]


# -- item 7: a corrupt daily partition -----------------------------------------------------------
def test_a_corrupt_daily_partition_halts_the_runner_naming_the_file(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    bad = home / "lake" / "stock_bars_1d" / "session=2024-02-27" / "part.parquet"
    truncate(bad)
    lake = digest(home / "lake")
    proc = live_cli("run", "--broker", "sim", "--home", str(home), "--cycles", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]  # halted, not crashed
    assert "Traceback" not in proc.stderr + proc.stdout
    final = json.loads(proc.stdout)
    assert final["state"] == "halted" and final["reasons"] == {"": {"lake_data": "halted"}}
    detail = final["reason_details"]["lake_data"]
    assert str(bad) in detail and "re-materialize stock_bars_1d for 2024-02-27" in detail
    assert final["orders_by_status"] == {} and final["fills"] == 0  # nothing traded on it
    assert status_json(home)["reason_details"] == final["reason_details"]  # journaled
    assert digest(home / "lake") == lake  # the lake is left as it was


# -- item 10: a damaged journal ------------------------------------------------------------------
def test_a_truncated_journal_is_named_and_the_kill_switch_still_works(tmp_path: Path) -> None:
    home = ran_once(tmp_path / "home")
    journal = journal_path(home)
    truncate(journal)
    before = digest(home)

    for args in (("status",), ("run", "--broker", "sim", "--cycles", "1")):
        line = one_error_line(live_cli(*args, "--home", str(home)))
        assert f"the journal {journal} is damaged" in line and "malformed" in line
        assert "broker is the source of truth" in line and f"mv {journal}" in line
        assert digest(home) == before  # read-only: nothing created, nothing changed

    halt = live_cli("halt", "--home", str(home))  # the kill switch needs no journal
    assert halt.returncode == 0, halt.stderr[-3000:]
    assert (home / "live" / "HALT").is_file()
    assert "halt file" in halt.stdout and f"the journal {journal} is damaged" in halt.stdout
    assert "no live runner is running" in halt.stdout
    flatten = live_cli("flatten", "--home", str(home))
    assert "flatten was not queued; halt file" in one_error_line(flatten)
    after = digest(home)
    assert after.pop("live/HALT") and after == before  # only the halt file is new


def test_the_documented_recovery_rebuilds_from_the_broker_and_starts_halted(
    tmp_path: Path,
) -> None:
    home = ran_once(tmp_path / "home")
    held = {p["symbol"]: p["qty"] for p in status_json(home)["positions"]}
    assert held == {"SPY": 510.0}
    truncate(journal_path(home))
    journal_path(home).rename(journal_path(home).with_suffix(".sqlite.damaged"))  # mv aside
    assert live_cli("halt", "--home", str(home)).returncode == 0
    proc = live_cli("run", "--broker", "sim", "--home", str(home), "--cycles", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = json.loads(proc.stdout)
    assert final["state"] == "halted" and "halt_file" in final["reasons"][""]
    assert {p["symbol"]: p["qty"] for p in final["positions"]} == held  # from the broker
    assert final["orders_by_status"] == {"filled": 1}  # adopted by its client id


def test_a_running_runner_halts_on_the_halt_file(
    running: tuple[Path, subprocess.Popen[bytes], str],
) -> None:
    home, first, url = running
    proc = live_cli("halt", "--home", str(home))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"the running runner (pid {first.pid} on host" in proc.stdout
    state = wait_for(lambda: (h := health(url))["state"] == "halted" and h, "HALTED", 60)
    assert "halt_file" in state["reasons"][""]
    shown = status_json(home)
    assert shown["runner"]["running"] is True and shown["runner"]["pid"] == first.pid
    assert shown["halt_file"]["reason"] == "live halt"


def test_status_is_read_only(tmp_path: Path) -> None:
    home = ran_once(tmp_path / "home")
    before = digest(home)
    shown = status_json(home)
    assert shown["runner"]["running"] is False  # the last holder's details are still shown
    assert shown["runner"]["broker"] == "sim" and shown["runner"]["host"] == socket.gethostname()
    assert digest(home) == before  # no -wal, no -shm, no lock file, no journal change
    missing = live_cli("status", "--home", str(tmp_path / "nowhere"))
    assert "no journal at" in one_error_line(missing)
    assert not (tmp_path / "nowhere").exists()


# -- item 11: commands when no runner is alive ---------------------------------------------------
def test_halt_and_flatten_say_no_runner_is_running_and_what_happens_next(tmp_path: Path) -> None:
    home = ran_once(tmp_path / "home")
    halt = live_cli("halt", "--home", str(home))
    assert halt.returncode == 0, halt.stderr[-3000:]
    assert f"no live runner is running on {home} (last heartbeat 2024-03-04T" in halt.stdout
    assert "the next runner to start is HALTED from its first cycle" in halt.stdout
    assert "queued" in halt.stdout
    flatten = live_cli("flatten", "--home", str(home))
    assert flatten.returncode == 0, flatten.stderr[-3000:]
    assert "but no live runner is running" in flatten.stdout
    assert "the next runner to start reconciles with the broker, then cancels" in flatten.stdout

    proc = live_cli("run", "--broker", "sim", "--home", str(home), "--cycles", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = json.loads(proc.stdout)  # what the messages promised
    assert final["state"] == "halted"
    assert {"halt_file", "kill_switch", "flatten"} <= set(final["reasons"][""])
    assert final["positions"] == [] and final["orders_by_status"] == {"filled": 2}


# -- bad input: one line, exit 2, the argument named ---------------------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("replay", "--start", "2024-12-32", "--end", "2024-12-31"), "--start '2024-12-32'"),
        (("run", "--cycles", "-1"), "--cycles -1"),
        (("run", "--broker", "sim", "--live"), "--broker sim --live contradict"),
        (("run", "--sim-start", "2024-03-04T10:00"), "--sim-start '2024-03-04T10:00'"),
        (("run", "--broker", "ib"), "--broker 'ib'"),
    ],
)
def test_bad_cli_input_is_one_line_naming_the_argument(
    tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    home = tmp_path / "home"
    line = one_error_line(live_cli(*args, "--home", str(home)))
    assert needle in line
    assert not home.exists()  # refused before anything was created


def test_a_deployment_naming_a_symbol_the_lake_lacks_is_refused_at_load(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    deploy(home, "ma-nope", symbols=("SPY", "NOPE"))
    proc = live_cli("run", "--broker", "sim", "--home", str(home), "--cycles", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ma-nope.json: symbol 'NOPE' is not in the lake" in proc.stderr
    final = json.loads(proc.stdout)
    assert [d["id"] for d in final["deployments"]] == ["ma-spy"]  # the valid one still trades
    assert final["orders_by_status"] == {"filled": 1}
    assert os.path.exists(home / "live" / "deployments" / "ma-nope.json")  # not deleted
