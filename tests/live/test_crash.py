"""Property 3: kill -9 of the runner subprocess at every injected point, then restart.

Each scenario runs ``python -m live.cli run --broker alpaca`` against its own fake Alpaca (real
alpaca-py, loopback) with ``ALPACA_IMPROVED_CRASH_AT`` set, checks the process died of SIGKILL,
restarts it clean, and then checks: local positions == the broker's, at most one broker order
per intent, nothing left pending/unknown, and no secret in anything the processes printed.
The four scenarios run concurrently (each is mostly process start-up).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from live.book import Ledger
from live.journal import orders as jo
from live.journal.store import Journal
from live.orders.reports import OrderStatus
from tests.fakes.alpaca_broker import FakeAlpacaBroker
from tests.live.helpers import KEY, SECRET
from tests.live.runner_setup import LAST_CLOSE, MONDAY_10, make_home

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {  # crash points of successive runs; a final clean run always follows
    "before_send": ["before_send"],
    "after_send_before_ack": ["after_send_before_ack"],
    "after_fill_before_position": ["after_fill_before_position"],
    "mid_reconciliation": ["after_send_before_ack", "mid_reconciliation"],
}


@dataclass
class Outcome:
    codes: list[int] = field(default_factory=list)
    output: str = ""
    home: Path | None = None
    fake_positions: dict[str, float] = field(default_factory=dict)
    fake_cids: list[str] = field(default_factory=list)


def run_once(home: Path, url: str, crash: str | None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA", "PYTEST"))}
    env.update(
        ALPACA_API_KEY=KEY, ALPACA_SECRET_KEY=SECRET, ALPACA_TRADING_URL=url, PYTHONPATH=str(ROOT)
    )
    if crash:
        env["ALPACA_IMPROVED_CRASH_AT"] = crash
    cmd = [
        sys.executable,
        "-m",
        "live.cli",
        "run",
        "--broker",
        "alpaca",
        "--home",
        str(home),
        "--cycles",
        "3",
        "--cycle-seconds",
        "0.05",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    return proc.returncode, proc.stdout + proc.stderr


def scenario(base: Path, points: list[str]) -> Outcome:
    home = make_home(base)
    out = Outcome(home=home)
    with FakeAlpacaBroker(api_key=KEY, secret_key=SECRET) as fake:
        fake.market_ts, fake.prices["SPY"] = MONDAY_10, LAST_CLOSE
        for crash in [*points, None]:
            code, text = run_once(home, fake.url, crash)
            out.codes.append(code)
            out.output += text
        out.fake_positions = {s: p[0] for s, p in fake.positions.items()}
        out.fake_cids = [o["client_order_id"] for o in fake.orders.values()]
    return out


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    with ThreadPoolExecutor(len(SCENARIOS)) as pool:
        futures = {
            name: pool.submit(scenario, tmp_path_factory.mktemp(name), points)
            for name, points in SCENARIOS.items()
        }
        yield {name: f.result() for name, f in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_restart_after_kill_9_is_consistent(outcomes: dict[str, Outcome], name: str) -> None:
    out = outcomes[name]
    crashes = len(SCENARIOS[name])
    assert out.codes[:crashes] == [-signal.SIGKILL] * crashes, out.output[-3000:]
    assert out.codes[-1] == 0, out.output[-3000:]
    journal = Journal(out.home / "live" / "journal.sqlite")
    orders = jo.list_orders(journal)
    assert len(orders) == 1 and orders[0].status is OrderStatus.FILLED, orders
    assert out.fake_cids == [orders[0].client_order_id]  # one broker order for the intent
    local = Ledger.from_fills(jo.all_fills(journal)).totals()
    assert local == out.fake_positions == {"SPY": 510.0}
    assert {k[1]: v for k, v in jo.saved_positions(journal).items()} == local
    assert not jo.open_orders(journal)  # nothing pending or unknown after reconciliation
    assert journal.get_meta("risk_reasons", {}) == {}


@pytest.mark.slow  # its fixture runs every kill -9 scenario
def test_no_secret_in_any_output(outcomes: dict[str, Outcome]) -> None:
    for out in outcomes.values():
        assert out.output, "the runs printed something (logs, status)"
        assert SECRET not in out.output and KEY not in out.output
        journal_bytes = (out.home / "live" / "journal.sqlite").read_bytes()
        assert SECRET.encode() not in journal_bytes and KEY.encode() not in journal_bytes
