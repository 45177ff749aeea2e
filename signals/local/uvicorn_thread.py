"""An ASGI app served by uvicorn in a daemon thread on 127.0.0.1 (an ephemeral port by default).

The local fakes and the tests' bot endpoints run this way, so the code under test talks real HTTP
to them from its own thread or event loop. uvicorn installs no signal handlers outside the main
thread, so several servers can run in one process.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn


class UvicornThread:
    """``start()`` returns once the socket is listening; ``stop()`` shuts it down cleanly."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, name: str = "asgi"):
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name=name)
        self.host = host
        self.port = port

    def start(self, timeout_s: float = 10.0) -> UvicornThread:
        self._thread.start()
        end = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > end:
                raise RuntimeError(f"{self._thread.name}: uvicorn did not start on {self.host}")
            time.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
