"""The ``stream`` feed on Alpaca: a :class:`~live.market.feed.StreamFeed` whose bar source is the
real market-data stream service (``live.market.stream.service.MarketStream``), subscribed to the
symbols of the deployments in the data root."""

from __future__ import annotations

import importlib.util

from live.errors import ConfigError
from live.market.feed import StreamFeed
from live.market.snapshot import SnapshotProvider
from live.runner.config import RunnerConfig


def alpaca_stream_feed(config: RunnerConfig, daily: SnapshotProvider) -> StreamFeed:
    """A stream feed over Alpaca's market-data stream (keys from the environment).

    Raises:
        ConfigError: The stream service is not available in this build.
    """
    if importlib.util.find_spec("live.market.stream.service") is None:
        raise ConfigError(
            "--market-data stream with --broker alpaca needs the market-data stream service "
            "(live.market.stream.service), which this build lacks; use --market-data lake, or "
            "--broker sim to replay the lake's minute bars"
        )
    raise ConfigError("--market-data stream with --broker alpaca is not wired yet; use lake")
