"""A tiny HTTP endpoint: ``GET /health`` -> state, last cycle, limits; ``GET /metrics`` -> the
runner's Prometheus metrics (:mod:`live.runner.metrics`).

It binds 127.0.0.1 by default; a container sets ``host="0.0.0.0"`` (``--health-host``) so the
kubelet's probes and Prometheus reach it (the Helm chart's NetworkPolicy limits who may).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from live.runner.metrics import RunnerMetrics


class HealthStatus:
    """Thread-safe status the runner updates and the endpoint serves."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {"state": "starting"}
        self._lock = threading.Lock()

    def update(self, **fields: Any) -> None:
        """Merge ``fields`` into the status."""
        with self._lock:
            self._data.update(fields)

    def snapshot(self) -> dict[str, Any]:
        """A copy of the status."""
        with self._lock:
            return json.loads(json.dumps(self._data, default=str))


class HealthServer:
    """Serves a :class:`HealthStatus` and, when given, :class:`RunnerMetrics` (``port=0``:
    ephemeral; see ``.port``)."""

    def __init__(
        self,
        status: HealthStatus,
        port: int = 0,
        metrics: RunnerMetrics | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        handler = type("H", (_Handler,), {"status": status, "metrics": metrics})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name="health",
        ).start()

    def close(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    status: HealthStatus
    metrics: RunnerMetrics | None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """No access log."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?")[0]
        if path == "/metrics" and self.metrics is not None:
            from live.runner.metrics import CONTENT_TYPE

            self._reply(self.metrics.exposition(), CONTENT_TYPE)
            return
        if path not in ("/health", "/"):
            self.send_error(404)
            return
        data = self.status.snapshot()
        # the state is in the body; halted is a healthy process
        self._reply(json.dumps(data, indent=1).encode(), "application/json")

    def _reply(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
