"""The dashboard's web app: one page, its static files, a JSON state and a live event stream.

Routes (all ``GET``; nothing here writes anything):

* ``/`` the page (``static/index.html``; plain JS and CSS from this package, no CDN),
* ``/static/...`` its script and style sheet,
* ``/api/state`` the whole state as JSON (:class:`signals.dashboard.state.StateCache`),
* ``/api/events`` Server-Sent Events: an ``state`` event with the whole state whenever it
  changed (the sources are polled every ``poll_s``), a ``heartbeat`` event every
  ``heartbeat_s`` otherwise. The page polls ``/api/state`` while the stream is down.

Relative URLs in the page make it work at ``/`` and mounted under a prefix (``/dashboard``).
"""

from __future__ import annotations

import html
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import anyio
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from signals.dashboard.auth import BasicAuth, credentials
from signals.dashboard.state import StateCache

STATIC = Path(__file__).parent / "static"
POLL_S = 1.0
HEARTBEAT_S = 15.0
# then the browser reconnects (2 s later): this bounds how long a server's graceful shutdown
# waits for an open page (uvicorn waits for every open response) below Kubernetes' 30 s grace
STREAM_MAX_S = 25.0
# the page loads only what this package serves (no CDN, no inline script, no external fonts)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _sse(event: str, data: str, event_id: str | None = None) -> bytes:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return (head + f"data: {data}\n\n").encode()


def dashboard_app(
    home: Path,
    engine: Engine,
    *,
    title: str = "alpaca-improved live",
    environ: Mapping[str, str] | None = None,
    poll_s: float = POLL_S,
    heartbeat_s: float = HEARTBEAT_S,
    stream_max_s: float = STREAM_MAX_S,
) -> Starlette:
    """The dashboard of ``home``'s live runner and ``engine``'s outbox, as a Starlette app.

    Args:
        home: The data root (``ALPACA_IMPROVED_HOME``).
        engine: The signals database (:func:`signals.db.make_engine`).
        title: The page's title.
        environ: Auth settings and the secrets to scrub (default ``os.environ``).
        poll_s: How often a live stream checks the sources for a change.
        heartbeat_s: The longest a live stream stays silent.
        stream_max_s: The longest one live stream lasts (the page reconnects by itself).

    Raises:
        ConfigError: Basic auth is half configured (see :mod:`signals.dashboard.auth`).
    """
    env = os.environ if environ is None else environ
    auth = credentials(env)
    cache = StateCache(Path(home), engine, title, env)
    closing = threading.Event()
    page = (STATIC / "index.html").read_text(encoding="utf-8")

    async def index(request: Request) -> Response:
        return HTMLResponse(
            page.replace("__TITLE__", html.escape(title, quote=True)), headers=SECURITY_HEADERS
        )

    async def state(request: Request) -> Response:
        _, body = await run_in_threadpool(cache.current)
        return JSONResponse(body, headers=SECURITY_HEADERS)

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 2000\n\n"  # the browser reconnects 2 s after a drop
            sent, quiet_since = "", time.monotonic()
            ends = quiet_since + stream_max_s
            while not closing.is_set() and time.monotonic() < ends:
                if await request.is_disconnected():
                    return
                digest, body = await run_in_threadpool(cache.current)
                if digest != sent:
                    yield _sse("state", json.dumps(body, default=str), digest)
                    sent, quiet_since = digest, time.monotonic()
                elif time.monotonic() - quiet_since >= heartbeat_s:
                    yield _sse("heartbeat", json.dumps({"generated_at": body["generated_at"]}))
                    quiet_since = time.monotonic()
                await anyio.sleep(poll_s)

        headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}  # no proxy buffering
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/api/state", state, methods=["GET"]),
        Route("/api/events", events, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(BasicAuth, user=auth[0], password=auth[1])] if auth else []
    app = Starlette(routes=routes, middleware=middleware)
    app.state.cache = cache  # tests and the integrator's health check read it
    # uvicorn waits for open responses before it stops, and an event stream never ends by
    # itself: a server calls this (or sets timeout_graceful_shutdown) when it shuts down
    app.state.close_streams = closing.set
    return app
