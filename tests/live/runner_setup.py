"""Builders of a runner against the fake Alpaca (in-process) or the simulated broker."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from live.clock import NEW_YORK, SimClock
from live.journal import orders as jo
from live.journal.store import Journal
from live.notify import LogSink, Sink
from live.runner.build import build_runner
from live.runner.config import RunnerConfig
from live.runner.core import Runner
from tests.fakes.alpaca_broker import FakeAlpacaBroker
from tests.live.conftest import make_alpaca
from tests.live.helpers import crossing_closes, deploy, sessions, write_lake

MONDAY_10 = datetime(2024, 3, 4, 10, 0, tzinfo=NEW_YORK)  # the session after the lake's last
LAST_CLOSE = crossing_closes(30)[-1]


def make_home(home: Path, deployments: int = 1) -> Path:
    """A lake whose last bar is an SMA(3)/SMA(10) cross on SPY, and ``deployments`` manifests."""
    write_lake(home, {"SPY": crossing_closes(30), "QQQ": [200.0] * 30}, sessions(30))
    for k in range(deployments):
        deploy(home, "ma-spy" if k == 0 else f"ma-spy-{k}")
    return home


def alpaca_runner(
    home: Path, fake: FakeAlpacaBroker, sinks: list[Sink] | None = None, **kw: Any
) -> Runner:
    """A runner on the real alpaca-py client against ``fake`` (market clock: ``fake``)."""
    fake.market_ts = fake.market_ts or MONDAY_10
    fake.prices["SPY"] = LAST_CLOSE  # the fake fills at the lake's last close
    broker = make_alpaca(fake, **kw.pop("broker_kw", {}))
    config = RunnerConfig(home=home, broker="alpaca", cycle_seconds=0, **kw)
    runner, _ = build_runner(config, broker=broker, sinks=sinks or [LogSink()])
    return runner


def sim_runner(home: Path, start: datetime = MONDAY_10, **kw: Any) -> Runner:
    """A runner on the simulated broker with an instant simulated clock."""
    sinks = kw.pop("sinks", None)
    config = RunnerConfig(home=home, broker="sim", cycle_seconds=60, **kw)
    runner, _ = build_runner(config, clock=SimClock(start, config.sim_speed), sinks=sinks)
    return runner


def local_positions(runner: Runner) -> dict[str, float]:
    """Account-wide positions from the journal's fills (what a restart would rebuild)."""
    from live.book import Ledger

    return Ledger.from_fills(jo.all_fills(runner.j)).totals()


def fake_positions(fake: FakeAlpacaBroker) -> dict[str, float]:
    return {s: p[0] for s, p in fake.positions.items()}


def wait_for(pred: Callable[[], object], what: str, timeout: float = 20) -> None:
    """Poll ``pred`` until it is truthy (AssertionError naming ``what`` after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def kill_switch_and_flatten(home: Path, journal: Journal) -> tuple[Runner, dict[str, Any]]:
    """A sim runner trading in a thread, driven through the CLI: ``halt``, ``flatten``,
    ``status``, ``resume`` (each awaited in the runner's state); returns the stopped runner and
    the ``status`` JSON taken while it was halted and flat. ``journal``: a second connection."""
    from typer.testing import CliRunner

    from live.cli import app
    from live.risk.engine import TradingState

    stop = threading.Event()
    runner = sim_runner(home, start=MONDAY_10, sim_speed=3_000.0)  # 60 s cycle = 20 ms
    thread = threading.Thread(target=runner.run, args=(None, stop.is_set), daemon=True)
    thread.start()
    cli = CliRunner()
    try:
        wait_for(lambda: jo.saved_positions(journal), "the first fill")
        assert cli.invoke(app, ["halt", "--home", str(home)]).exit_code == 0
        wait_for(lambda: runner.risk.state() is TradingState.HALTED, "halt")
        assert cli.invoke(app, ["flatten", "--home", str(home)]).exit_code == 0
        wait_for(lambda: not jo.saved_positions(journal), "flatten")
        status = json.loads(cli.invoke(app, ["status", "--home", str(home)]).stdout)
        assert cli.invoke(app, ["resume", "--home", str(home)]).exit_code == 0
        wait_for(lambda: runner.risk.state() is TradingState.ACTIVE, "resume")
    finally:
        stop.set()
        thread.join(20)
    return runner, status
