"""Alpaca's trade-update stream: order changes as they happen, between the runner's cycles.

Alpaca recommends the stream for maintaining order state. alpaca-py's ``TradingStream`` runs in
a daemon thread (it reconnects with backoff by itself) and only puts parsed
:class:`~live.orders.reports.OrderReport` objects on a queue; the runner thread drains the queue and
applies them through the same order state machine as a poll (duplicates, stale and out-of-order
events are harmless there). The stream is an accelerator, never the source of truth: events
missed while disconnected are caught by the next poll and by reconciliation.

The stream URL follows the trading URL (``https://paper-api...`` -> ``wss://paper-api.../stream``)
unless ``ALPACA_STREAM_URL`` says otherwise, and passes the same paper/live host guard.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from alpaca.trading.models import Order
from alpaca.trading.stream import TradingStream

from live.brokers.alpaca import AlpacaSettings, check_host
from live.brokers.alpaca_parse import order_report
from live.orders.reports import OrderReport

log = logging.getLogger("live.stream")
SCHEMES = {"https": "wss", "http": "ws"}


def stream_url(settings: AlpacaSettings, env: Mapping[str, str] | None = None) -> str:
    """The trade-update stream URL for ``settings`` (LiveModeRefused on a wrong host)."""
    env = os.environ if env is None else env
    url = env.get("ALPACA_STREAM_URL")
    if not url:
        parts = urlsplit(settings.base_url)
        url = urlunsplit((SCHEMES.get(parts.scheme, parts.scheme), parts.netloc, "/stream", "", ""))
    parts = urlsplit(url)
    as_http = {v: k for k, v in SCHEMES.items()}.get(parts.scheme, parts.scheme)
    check_host(urlunsplit((as_http, parts.netloc, parts.path, "", "")), settings.live, env)
    return url


@dataclass
class StreamStats:
    """What the stream delivered (for the health endpoint)."""

    received: int = 0
    malformed: int = 0
    last_event: str = ""


class TradeUpdateStream:
    """alpaca-py's ``TradingStream`` in a daemon thread; :meth:`drain` returns the reports.

    Args:
        settings: The account's settings (keys are handed to alpaca-py, never logged).
        url: The stream URL (see :func:`stream_url`).
    """

    def __init__(self, settings: AlpacaSettings, url: str) -> None:
        self.url = url
        self.stats = StreamStats()
        self._queue: queue.SimpleQueue[OrderReport] = queue.SimpleQueue()
        self._stream = TradingStream(
            settings.api_key,
            settings.secret_key,
            paper=not settings.live,
            raw_data=True,  # parsed here, so a malformed event is counted, not fatal
            url_override=url,
        )
        self._stream._reconnect_min_backoff = 0.5
        self._stream.subscribe_trade_updates(self._on_update)
        self._thread: threading.Thread | None = None

    async def _on_update(self, msg: dict[str, Any]) -> None:
        data = msg.get("data") if isinstance(msg, dict) else None
        try:
            if not isinstance(data, dict):
                raise ValueError("trade update without data")
            report = order_report(Order(**data["order"]))
        except Exception as exc:  # noqa: BLE001 - a bad event must never stop the stream
            self.stats.malformed += 1
            log.warning("malformed trade update ignored: %s", type(exc).__name__)
            return
        self.stats.received += 1
        self.stats.last_event = str(data.get("event", ""))
        self._queue.put(report)

    def set_keys(self, api_key: str, secret_key: str) -> None:
        """Use rotated keys from the next (re)connect on (alpaca-py re-authenticates then)."""
        self._stream._api_key, self._stream._secret_key = api_key, secret_key

    def start(self) -> TradeUpdateStream:
        """Connect in the background (returns at once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._stream.run, name="trade-updates", daemon=True
            )
            self._thread.start()
        return self

    def drain(self) -> list[OrderReport]:
        """Every report received since the last call, in arrival order."""
        out: list[OrderReport] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        """Stop the stream (best effort; the thread is a daemon)."""
        try:
            if self._stream._loop is not None:
                self._stream.stop()
        except Exception as exc:  # noqa: BLE001 - closing must not raise
            log.debug("stream stop: %s", exc)
