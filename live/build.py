"""Wire a :class:`~live.runner.Runner` from its config: clock, broker, journal, data, sinks."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from live.brokers.base import Broker
from live.brokers.sim import SimBroker
from live.clock import NEW_YORK, BrokerClock, Clock, SimClock, SystemClock, regular_hours
from live.health import HealthServer
from live.journal import Journal
from live.notify import FanOut, LogSink, Sink, WebhookSink
from live.runner import Runner
from live.runner_config import RunnerConfig
from live.snapshot import LakeSnapshotProvider, SnapshotProvider

if TYPE_CHECKING:
    from live.brokers.alpaca_stream import TradeUpdateStream

DEFAULT_HOME = ".alpaca_improved"


def resolve_home(home: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """``home``, else ``ALPACA_IMPROVED_HOME``, else ``./.alpaca_improved``."""
    env = os.environ if env is None else env
    return Path(home or env.get("ALPACA_IMPROVED_HOME") or DEFAULT_HOME).resolve()


def lake_sessions(home: Path) -> list[date]:
    """Sessions of ``stock_bars_1d`` in the lake of ``home``."""
    root = home / "lake" / "stock_bars_1d"
    return sorted(
        date.fromisoformat(p.parent.name.split("=", 1)[1])
        for p in root.glob("session=*/part.parquet")
    )


def default_sim_start(home: Path, fallback: Clock) -> datetime:
    """Half an hour after the first NYSE open following the lake's latest daily-bar session."""
    sessions = lake_sessions(home)
    if not sessions:
        return fallback.now()
    last_close = datetime.combine(sessions[-1], time(16, 0), NEW_YORK)
    return regular_hours(last_close).next_open + timedelta(minutes=30)


def build_runner(
    config: RunnerConfig, *, clock: Clock | None = None, broker: Broker | None = None,
    snapshots: SnapshotProvider | None = None, crash: Callable[[str], None] | None = None,
    sinks: list[Sink] | None = None, updates: TradeUpdateStream | None = None,
) -> tuple[Runner, HealthServer | None]:  # fmt: skip
    """A ready runner (not started) and its health server (when ``health_port`` is set).

    ``updates``: a trade-update stream to follow (built from the environment for ``alpaca``
    when ``config.stream``; started here)."""
    holder: list[Runner] = []
    if broker is None and config.broker == "sim":
        clock = clock or SimClock(
            config.sim_start or default_sim_start(config.home, SystemClock()), config.sim_speed
        )
        broker = SimBroker(
            lambda s: holder[0].quote(s) if holder else None,
            clock,
            config.sim,
            config.home / "live" / "sim_broker.jsonl",
        )
    elif broker is None:
        from live.brokers.alpaca import AlpacaBroker, settings_from_env  # heavy: only when used

        base = clock or SystemClock()
        settings = settings_from_env(live=config.live)
        broker = AlpacaBroker(settings, base)
        clock = BrokerClock(base, broker.clock)
        if config.stream and updates is None:
            from live.brokers.alpaca_stream import TradeUpdateStream, stream_url

            updates = TradeUpdateStream(settings, stream_url(settings))
    elif clock is None:  # a broker passed in: its market clock is the authority
        clock = BrokerClock(SystemClock(), broker.clock)
    sink_list: list[Sink] = list(sinks) if sinks is not None else [LogSink()]
    if config.webhook_url:
        sink_list.append(WebhookSink(config.webhook_url))
    runner = Runner(
        config,
        Journal(config.journal_path),
        broker,
        clock,
        snapshots or LakeSnapshotProvider(config.home, config.lookback),
        FanOut(sink_list),
        crash,
        updates.start() if updates is not None else None,
    )
    holder.append(runner)
    health = (
        HealthServer(runner.status, config.health_port) if config.health_port is not None else None
    )
    return runner, health
