"""Notifications behind one interface, fanned out so one failing sink never blocks trading.

:class:`FanOut` queues each event and delivers it from a daemon thread; a sink that raises or
hangs (bounded by its own timeout) only loses its own copy, and a full queue drops the event
rather than stalling the runner (freqtrade's RPC manager, minus the bots).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger("live.notify")


@dataclass(frozen=True, slots=True)
class Event:
    """One notification."""

    kind: str
    message: str
    level: str = "info"
    data: dict[str, Any] = field(default_factory=dict)


class Sink(ABC):
    """A notification destination."""

    name = "sink"

    @abstractmethod
    def send(self, event: Event) -> None:
        """Deliver ``event`` (may raise; the fan-out contains it)."""


class LogSink(Sink):
    """Writes events to the ``live.events`` logger."""

    name = "log"

    def __init__(self) -> None:
        self.log = logging.getLogger("live.events")

    def send(self, event: Event) -> None:
        level = logging.WARNING if event.level in ("warning", "error") else logging.INFO
        self.log.log(level, "%s: %s", event.kind, event.message)


class WebhookSink(Sink):
    """POSTs events as JSON to ``url`` (a Slack/Discord-style incoming webhook)."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.url = url
        self.timeout = timeout

    def send(self, event: Event) -> None:
        data = json.dumps(
            {"text": f"[{event.level}] {event.kind}: {event.message}", **asdict(event)}
        ).encode()
        req = urllib.request.Request(
            self.url, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - configured URL
            resp.read()


class FanOut:
    """Delivers every event to every sink from a background thread.

    Args:
        sinks: Destinations.
        max_queue: Events waiting beyond this are dropped (counted in ``dropped``).
    """

    def __init__(self, sinks: Sequence[Sink], max_queue: int = 1_000) -> None:
        self.sinks = list(sinks)
        self.failures: dict[str, int] = {}
        self.delivered = 0
        self.dropped = 0
        self._queue: queue.Queue[Event | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._loop, daemon=True, name="notify")
        self._thread.start()

    def notify(self, kind: str, message: str, level: str = "info", **data: Any) -> None:
        """Queue an event; never blocks and never raises."""
        try:
            self._queue.put_nowait(Event(kind, message, level, data))
        except queue.Full:
            self.dropped += 1

    def _loop(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            for sink in self.sinks:
                try:
                    sink.send(event)
                    self.delivered += 1
                except Exception as exc:  # noqa: BLE001 - a sink must never stop the others
                    self.failures[sink.name] = self.failures.get(sink.name, 0) + 1
                    log.warning("notification sink %s failed: %s", sink.name, type(exc).__name__)
            self._queue.task_done()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait (bounded) until queued events are delivered; True if drained."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def close(self) -> None:
        """Stop the delivery thread after the queued events."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=1.0)
