"""Issue 10, defects 3 and 5: restart after downtime, and reconciliation journals only changes.

Defect 3: a runner SIGKILLed around the send of an order, then restarted after downtime that
spans a session, looks the order up at the broker by its client id: adopted when the broker has
it, otherwise expired with a journaled reason. It is never sent late. Each scenario runs the
real CLI (``python -m live.cli run``) with ``ALPACA_IMPROVED_CRASH_AT``, against the fake Alpaca
(real alpaca-py, loopback) or the simulated broker (its state persisted across processes).

Defect 5: restarts with no change at the broker add no ``order_events`` row.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pytest

from live.book import Ledger
from live.brokers.sim_state import SimState
from live.clock import NEW_YORK
from live.journal import orders as jo
from live.journal.store import Journal
from live.orders.reports import OrderStatus
from tests.fakes.alpaca_broker import FakeAlpacaBroker
from tests.live.helpers import KEY, SECRET, write_lake
from tests.live.procs import cli_env, live_cli
from tests.live.runner_setup import LAST_CLOSE, MONDAY_10, alpaca_runner, make_home, sim_runner

TUESDAY_10 = datetime(2024, 3, 5, 10, 0, tzinfo=NEW_YORK)
# name -> (broker, crash point of the first run, does the lake gain Monday's bar meanwhile)
SCENARIOS = {
    "alpaca_unsent_new_data": ("alpaca", "before_send", True),
    "alpaca_unsent_stale_lake": ("alpaca", "before_send", False),
    "alpaca_sent_new_data": ("alpaca", "after_send_before_ack", True),
    "sim_unsent_new_data": ("sim", "before_send", True),
    "sim_sent_new_data": ("sim", "after_send_before_ack", True),
}


@dataclass
class Outcome:
    codes: list[int] = field(default_factory=list)
    output: str = ""
    home: Path = Path()
    broker_cids: list[str] = field(default_factory=list)
    broker_positions: dict[str, float] = field(default_factory=dict)
    lookups: int = 0  # GET /v2/orders:by_client_order_id (fake Alpaca only)


def next_session(home: Path) -> None:
    """Monday's bar reaches the lake (SPY flat after its crossing: no new signal)."""
    write_lake(home, {"SPY": [LAST_CLOSE], "QQQ": [200.0]}, [date(2024, 3, 4)])


def run(home: Path, broker: str, url: str | None, crash: str | None) -> tuple[int, str]:
    args = ["run", "--broker", broker, "--home", str(home), "--cycles", "3"]
    args += ["--cycle-seconds", "0.05"] if broker == "alpaca" else []
    proc = live_cli(*args, env=cli_env(url, crash), timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def alpaca_scenario(base: Path, crash: str, new_data: bool) -> Outcome:
    out = Outcome(home=make_home(base))
    with FakeAlpacaBroker(api_key=KEY, secret_key=SECRET) as fake:
        fake.market_ts, fake.prices["SPY"] = MONDAY_10, LAST_CLOSE
        for point in (crash, None):
            if point is None:  # the runner was down over Monday's close
                fake.market_ts = TUESDAY_10
                if new_data:
                    next_session(out.home)
            code, text = run(out.home, "alpaca", fake.url, point)
            out.codes.append(code)
            out.output += text
        out.broker_cids = [o["client_order_id"] for o in fake.orders.values()]
        out.broker_positions = {s: p[0] for s, p in fake.positions.items()}
        out.lookups = sum(1 for _, m, p in fake.requests if p.endswith("by_client_order_id"))
    return out


def sim_scenario(base: Path, crash: str) -> Outcome:
    out = Outcome(home=make_home(base))  # the first run starts Monday 10:00 (simulated)
    for point in (crash, None):
        if point is None:
            next_session(out.home)  # so the restart's simulated clock starts Tuesday 10:00
        code, text = run(out.home, "sim", None, point)
        out.codes.append(code)
        out.output += text
    state = SimState.load(out.home / "live" / "sim_broker.jsonl", 100_000.0)
    out.broker_cids = [o.client_order_id for o in state.orders.values()]
    out.broker_positions = {s: p[0] for s, p in state.positions.items() if p[0]}
    return out


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    with ThreadPoolExecutor(len(SCENARIOS)) as pool:
        futures = {
            name: pool.submit(
                alpaca_scenario if broker == "alpaca" else sim_scenario,
                tmp_path_factory.mktemp(name),
                crash,
                *((new_data,) if broker == "alpaca" else ()),
            )
            for name, (broker, crash, new_data) in SCENARIOS.items()
        }
        yield {name: f.result() for name, f in futures.items()}


def first_order(home: Path) -> tuple[jo.OrderRow, list[tuple[str, str, str]]]:
    """Monday's order (the one decided before the crash) and its journaled events."""
    journal = Journal(home / "live" / "journal.sqlite")
    try:
        row = jo.list_orders(journal)[0]
        events = journal.rows(
            "SELECT source, status, note FROM order_events WHERE client_order_id=? ORDER BY id",
            row.client_order_id,
        )
        return row, [(e[0], e[1], e[2]) for e in events]
    finally:
        journal.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, s in SCENARIOS.items() if s[1] == "before_send"])
def test_an_unsent_order_is_expired_not_sent_late(outcomes: dict[str, Outcome], name: str) -> None:
    out = outcomes[name]
    assert out.codes == [-signal.SIGKILL, 0], out.output[-3000:]
    row, events = first_order(out.home)
    assert row.session == "2024-03-01"  # decided Monday on Friday's bars
    assert row.client_order_id not in out.broker_cids  # never sent, in particular not late
    assert row.status is OrderStatus.UNSENT_EXPIRED
    source, status, note = events[-1]
    assert (source, status) == ("lookup", "unsent_expired")
    assert "not at the broker" in note and "expired unsent" in note
    if name.endswith("stale_lake"):  # no new data: the market's close decides
        assert "the market closed since (2024-03-04 16:00)" in note
    else:
        assert "now decides on 2024-03-04" in note
    if name.startswith("alpaca"):
        assert out.lookups >= 1  # looked up by its client id
    journal = Journal(out.home / "live" / "journal.sqlite")
    try:
        assert journal.get_meta("risk_reasons", {}) == {}  # nothing to halt for
        local = Ledger.from_fills(jo.all_fills(journal)).totals()
    finally:
        journal.close()
    assert local == out.broker_positions == {}


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, s in SCENARIOS.items() if s[1] != "before_send"])
def test_a_sent_order_is_adopted_after_downtime(outcomes: dict[str, Outcome], name: str) -> None:
    out = outcomes[name]
    assert out.codes == [-signal.SIGKILL, 0], out.output[-3000:]
    row, _ = first_order(out.home)
    assert out.broker_cids.count(row.client_order_id) == 1  # sent once, before the crash
    assert row.status is OrderStatus.FILLED
    journal = Journal(out.home / "live" / "journal.sqlite")
    try:
        local = Ledger.from_fills(jo.all_fills(journal)).totals()
        assert journal.get_meta("risk_reasons", {}) == {}
    finally:
        journal.close()
    assert local == out.broker_positions == {"SPY": 510.0}


def events(runner_journal: Journal) -> int:
    return int(runner_journal.rows("SELECT COUNT(*) FROM order_events")[0][0])


def test_restarts_without_broker_changes_journal_nothing(
    tmp_path: Path, fake: FakeAlpacaBroker
) -> None:
    """Defect 5: 117 orders and 8 restarts added 532 rows; now no change means no row."""
    home = make_home(tmp_path, deployments=3)
    fake.auto_fill, fake.cash = False, 1_000_000.0  # resting orders: every cycle polls them
    runner = alpaca_runner(home, fake)
    runner.run(cycles=1)
    fake.fill(jo.list_orders(runner.j)[0].client_order_id)  # one filled, two resting
    runner.run(cycles=1)
    statuses = sorted(r.status.value for r in jo.list_orders(runner.j))
    assert statuses == ["filled", "new", "new"]
    before = events(runner.j)
    for _ in range(8):
        runner.j.close()
        runner = alpaca_runner(home, fake)  # a restart: start-up reconciliation, then cycles
        runner.run(cycles=2)
        runner.reconcile(full=True)
    assert events(runner.j) == before
    fake.fill(jo.list_orders(runner.j)[1].client_order_id)  # a change is still journaled
    runner.run(cycles=1)
    assert events(runner.j) == before + 1


def test_sim_restarts_journal_nothing_new(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    runner = sim_runner(home)
    runner.run(cycles=2)
    assert [r.status for r in jo.list_orders(runner.j)] == [OrderStatus.FILLED]
    before = events(runner.j)
    for _ in range(4):
        runner.j.close()
        runner = sim_runner(home)
        runner.run(cycles=2)
    assert events(runner.j) == before
