"""Wire a :class:`~live.runner.core.Runner` from its config: clock, broker, journal, data, sinks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from contracts import lake_store, paths
from live.brokers.base import Broker
from live.brokers.sim import SimBroker
from live.clock import NEW_YORK, BrokerClock, Clock, SimClock, SystemClock, regular_hours
from live.journal.pg import configured, open_journal
from live.journal.store import Journal
from live.market.feed import MarketFeed
from live.market.snapshot import LakeSnapshotProvider, SnapshotProvider
from live.notify import FanOut, LogSink, Sink, WebhookSink
from live.runner.config import RunnerConfig
from live.runner.core import Runner
from live.runner.health import HealthServer
from live.runner.lock import FileLock, holder_details, lock_path, runner_lock

if TYPE_CHECKING:
    from live.brokers.alpaca_stream import TradeUpdateStream


def resolve_home(home: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """``home``, else ``ALPACA_IMPROVED_HOME``, else ``./.alpaca_improved``, absolute."""
    return Path(home or paths.home_from_env(env)).resolve()


def lake_sessions(home: Path, today: date | None = None) -> list[date]:
    """Sessions of ``stock_bars_1d`` in the lake of ``home``.

    Raises:
        ConfigError: a partition is dated after ``today`` (New York; default: the wall clock):
            no market data exists for it, so its bars are made up and must not be traded on.
    """
    root = paths.lake_dir(home) / "stock_bars_1d"
    store = lake_store.from_env(paths.lake_dir(home))  # the bucket with ALPACA_IMPROVED_LAKE_URI
    if store.remote:
        root = Path(store.url(Path("stock_bars_1d")))
        sessions = [date.fromisoformat(k) for k in store.scan("stock_bars_1d").files]
    else:
        sessions = sorted(
            date.fromisoformat(p.parent.name.split("=", 1)[1])
            for p in root.glob("session=*/part.parquet")
        )
    today = today or SystemClock().now().astimezone(NEW_YORK).date()
    if sessions and sessions[-1] > today:
        from live.errors import ConfigError

        future = [s for s in sessions if s > today]
        raise ConfigError(
            f"the lake has stock_bars_1d partitions after today ({today.isoformat()}): "
            f"{root / f'session={future[0].isoformat()}'}"
            f"{f' and {len(future) - 1} more' if len(future) > 1 else ''}; no market data "
            "exists for them yet, so they are made up: delete them before running"
        )
    return sessions


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
    feed: MarketFeed | None = None, local_journal: bool = False,
) -> tuple[Runner, HealthServer | None]:  # fmt: skip
    """A ready runner (not started) and its health server (when ``health_port`` is set).

    ``feed``: the market data (default by ``config.market_data``: ``lake``, the daily
    snapshots; ``stream`` with ``sim``, the lake's minute bars replayed on the simulated clock,
    :class:`~live.market.sim_replay.SimReplayFeed`; ``stream`` with ``alpaca``, a
    :class:`~live.market.feed.StreamFeed` over ``live.market.stream.service.MarketStream``).

    The runner holds its data root's lock (:mod:`live.runner.lock`) from here on, taken before
    the journal or the simulated broker's state is opened.

    The journal and the lock are on Postgres when ``ALPACA_IMPROVED_DATABASE_URL`` is set
    (:mod:`live.journal.pg`, :mod:`live.runner.pg_lock`) unless ``local_journal`` (a replay's own
    journal), else ``<home>/live/journal.sqlite`` and ``<home>/live/runner.lock``.

    ``updates``: a trade-update stream to follow (built from the environment for ``alpaca``
    when ``config.stream``; started here).

    Raises:
        RunnerLocked: Another runner process holds the data root (naming it).
    """
    on_sqlite = local_journal or configured() is None
    if on_sqlite and config.journal_path.is_file():  # a damaged journal is refused first
        Journal(config.journal_path, readonly=True).close()
    lock = FileLock(lock_path(config.home)) if local_journal else runner_lock(config.home)
    lock.acquire(holder_details(config.broker))
    try:
        journal = (
            partial(Journal, config.journal_path)
            if on_sqlite
            else partial(open_journal, config.home)
        )
        runner, health = _wire(
            config, clock, broker, snapshots, crash, sinks, updates, feed, journal
        )
    except BaseException:
        lock.release()
        raise
    runner.lock = lock
    return runner, health


def _wire(
    config: RunnerConfig, clock: Clock | None, broker: Broker | None,
    snapshots: SnapshotProvider | None, crash: Callable[[str], None] | None,
    sinks: list[Sink] | None, updates: TradeUpdateStream | None, feed: MarketFeed | None,
    journal: Callable[[], Journal],
) -> tuple[Runner, HealthServer | None]:  # fmt: skip
    holder: list[Runner] = []
    if broker is None and config.broker == "sim":
        clock = clock or SimClock(
            config.sim_start or default_sim_start(config.home, SystemClock()), config.sim_speed
        )
        broker = SimBroker(
            lambda s: holder[0].quote(s) if holder else None,
            clock,
            config.sim,
            paths.sim_broker_path(config.home),
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
            broker.on_keys.append(updates.set_keys)  # a rotated key reaches the stream too
    elif clock is None:  # a broker passed in: its market clock is the authority
        clock = BrokerClock(SystemClock(), broker.clock)
    sink_list: list[Sink] = list(sinks) if sinks is not None else [LogSink()]
    if config.webhook_url:
        sink_list.append(WebhookSink(config.webhook_url))
    daily = snapshots or LakeSnapshotProvider(config.home, config.lookback)
    runner = Runner(
        config,
        journal(),
        broker,
        clock,
        daily,
        FanOut(sink_list),
        crash,
        updates.start() if updates is not None else None,
        feed or market_feed(config, daily),
    )
    holder.append(runner)
    health = (
        HealthServer(runner.status, config.health_port, runner.metrics, config.health_host)
        if config.health_port is not None
        else None
    )
    return runner, health


def market_feed(config: RunnerConfig, daily: SnapshotProvider) -> MarketFeed:
    """The feed ``config.market_data`` names (see :func:`build_runner`).

    Raises:
        ConfigError: ``stream`` with ``alpaca`` where the stream service is not available.
    """
    if config.market_data == "lake":
        return MarketFeed(daily)
    if config.broker == "sim":
        from live.market.sim_replay import SimReplayFeed

        return SimReplayFeed(config.home, daily, grace_s=config.bar_grace_s)
    from live.market.stream_feed import alpaca_stream_feed  # heavy: only when used

    return alpaca_stream_feed(config, daily)
