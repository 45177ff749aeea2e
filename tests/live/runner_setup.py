"""Builders of a runner against the fake Alpaca (in-process) or the simulated broker."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from live.clock import NEW_YORK, SimClock
from live.journal import orders as jo
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
