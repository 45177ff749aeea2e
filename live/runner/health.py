"""A tiny HTTP health endpoint on 127.0.0.1: ``GET /health`` -> state, last cycle, limits."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
    """Serves a :class:`HealthStatus` (``port=0``: ephemeral; see ``.port``)."""

    def __init__(self, status: HealthStatus, port: int = 0) -> None:
        handler = type("H", (_Handler,), {"status": status})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
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

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """No access log."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path.split("?")[0] not in ("/health", "/"):
            self.send_error(404)
            return
        data = self.status.snapshot()
        body = json.dumps(data, indent=1).encode()
        self.send_response(200)  # the state is in the body; halted is a healthy process
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
