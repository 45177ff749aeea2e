"""The ``stream`` feed on Alpaca: a :class:`~live.market.feed.StreamFeed` whose bar source is the
market-data stream service (:class:`~live.market.stream.service.MarketStream`: one socket per key
and feed, revisions applied once, REST gap backfill), subscribed to the symbols of the
deployments in the data root when the runner starts."""

from __future__ import annotations

import logging
from pathlib import Path

from contracts import paths
from live.deployments.active_set import strategy_symbols
from live.deployments.manifests import load_manifest, scan
from live.errors import ConfigError
from live.market.feed import StreamFeed
from live.market.snapshot import SnapshotProvider
from live.runner.config import RunnerConfig

log = logging.getLogger("live.market")


def deployment_symbols(home: Path) -> list[str]:
    """The symbols every loadable deployment manifest of ``home`` reads bars of."""
    symbols: set[str] = set()
    for path in scan(paths.deployments_dir(home)):
        try:
            symbols.update(strategy_symbols(load_manifest(path)))
        except ConfigError as exc:  # the runner refuses it with its own message
            log.info("stream symbols: skipping %s (%s)", path.name, exc)
    return sorted(symbols)


def alpaca_stream_feed(config: RunnerConfig, daily: SnapshotProvider) -> StreamFeed:
    """A started stream feed over Alpaca's market data (keys and feed from the environment).

    Raises:
        ConfigError: No deployment names a symbol, or the stream settings are wrong (naming
            the setting and the fix).
    """
    from live.market.stream.service import MarketStream  # heavy: only when used

    symbols = deployment_symbols(config.home)
    if not symbols:
        raise ConfigError(
            f"--market-data stream: no deployment in {paths.deployments_dir(config.home)} "
            "names a symbol to stream; deploy one first, or use --market-data lake"
        )
    feed = StreamFeed(daily, symbols=symbols, grace_s=config.bar_grace_s)
    stream = MarketStream(
        symbols, on_bar=feed.on_bar, on_quote=feed.on_quote, on_status=feed.on_status
    )
    feed.attach(stream)  # the stream applies each frame to its book before on_bar
    stream.start()
    return feed
