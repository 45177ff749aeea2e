"""A threaded loopback HTTP server with routes, per-request fault knobs and a request log.

Vendor fakes subclass ``FakeServer``, register routes in ``register_routes`` (the extension point:
a later fake adds ``/v2/orders`` by overriding it and calling ``super()``) and describe their
error bodies in ``error_body``. Faults are queued through the in-process control API, because the
real clients cannot be made to send a fault header:

    fake.queue_faults("/v2/stocks/bars", ["503", "503", "ok"])   # one per matching request
    fake.set_fault("/v2/stocks/bars", "truncated")               # every matching request

Transport faults (status codes, timeout, disconnect, truncated JSON, HTML, ``{}``, 301) are
applied here; page faults (``cyclic_token``, ``empty_page_token``, ``duplicate_page``) are handed
to the route through ``Request.fault`` and applied by ``paginate``.
"""

from __future__ import annotations

import base64
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

STATUS_FAULTS = {
    "429": 429,
    "500": 500,
    "502": 502,
    "503": 503,
    "504": 504,
    "401": 401,
    "403": 403,
    "403_plan": 403,
    "301": 301,
}
TRANSPORT_FAULTS = set(STATUS_FAULTS) | {
    "timeout",
    "disconnect",
    "truncated",
    "html",
    "empty_object",
}
PAGE_FAULTS = {"cyclic_token", "empty_page_token", "duplicate_page"}
HTML_502 = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
    b"Gateway</h1></center><hr><center>nginx</center></body></html>"
)
MAX_LOG = 10_000


@dataclass
class Request:
    """One request as a route sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    fault: str | None = None
    match: dict[str, str] = field(default_factory=dict)

    def param(self, name: str, default: str | None = None) -> str | None:
        """The last value of query parameter ``name``."""
        values = self.query.get(name)
        return values[-1] if values else default

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Response:
    """What a route answers: a JSON-able body (or raw bytes), a status and extra headers."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Request], Response]


def encode_token(state: dict[str, Any]) -> str:
    """An opaque page token carrying ``state`` (offset, nonce, original query)."""
    return base64.urlsafe_b64encode(json.dumps(state, sort_keys=True).encode()).decode()


def decode_token(token: str | None) -> dict[str, Any]:
    if not token:
        return {"offset": 0, "nonce": 0}
    return json.loads(base64.urlsafe_b64decode(token.encode()))


def paginate(
    items: list[Any],
    req: Request,
    limit: int,
    token: str | None,
    extra: dict[str, Any] | None = None,
) -> tuple[list[Any], str | None]:
    """One page of ``items`` from ``token`` with page faults applied; returns (page, next token)."""
    state = decode_token(token)
    off, nonce = int(state["offset"]), int(state.get("nonce", 0))
    mk = lambda o, n: encode_token({**(extra or {}), "offset": o, "nonce": n})  # noqa: E731
    if req.fault == "empty_page_token":  # nothing now, but a token to the same place
        return [], mk(off, nonce + 1)
    if req.fault == "duplicate_page" and off > 0:  # the previous page again, then move on
        return items[max(off - limit, 0) : off], mk(off, nonce + 1)
    page, nxt = items[off : off + limit], off + limit
    if req.fault == "cyclic_token":  # points back at the page just served
        return page, token or mk(0, nonce)
    return page, (mk(nxt, 0) if nxt < len(items) else None)


class LoopbackServer:
    """A ``BaseHTTPRequestHandler`` server on 127.0.0.1 (ephemeral port), served in daemon
    threads; the handler class reaches this object as ``self.fake``. Start with ``with``."""

    vendor = "fake"
    _httpd: ThreadingHTTPServer | None = None

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler (subclasses name theirs)."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the fake first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        handler = type("Handler", (self.handler_class(),), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"{self.vendor}-fake",
        ).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeServer(LoopbackServer):
    """Base of the vendor fakes: routes, fault knobs and a request log over a loopback server."""

    def __init__(
        self,
        timeout_sleep_s: float = 1.5,
        rate_limit: int = 200,
        enforce_rate_limit: bool = False,
        reset_after_s: float = 1.0,
        window_s: float = 60.0,
    ) -> None:
        self.timeout_sleep_s = timeout_sleep_s
        self.rate_limit = rate_limit
        self.enforce_rate_limit = enforce_rate_limit
        self.reset_after_s = reset_after_s
        self.window_s = window_s
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self.rejected = 0  # requests refused by the enforced rate limit
        self.request_times: list[float] = []
        self._routes: list[tuple[str, re.Pattern[str], Route]] = []
        self._queued: dict[str, deque[str]] = {}
        self._sticky: dict[str, str] = {}
        self._rate_window: deque[float] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.register_routes()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    # -- extension points -------------------------------------------------------------------
    def register_routes(self) -> None:
        """Register routes with ``self.route``; subclasses override and call ``super()``."""

    def route(self, method: str, pattern: str, handler: Route) -> None:
        """Serve ``method`` requests whose path fully matches ``pattern`` (named groups kept)."""
        self._routes.append((method.upper(), re.compile(pattern), handler))

    def authorized(self, req: Request) -> bool:
        """Whether the request carries the fake's keys (vendors override)."""
        return True

    def error_body(self, status: int, fault: str | None) -> Any:
        """The vendor's JSON body for an error ``status`` (vendors override)."""
        return {"message": f"error {status}"}

    # -- control API --------------------------------------------------------------------------
    def queue_faults(self, path_prefix: str, faults: list[str]) -> None:
        """Apply ``faults`` in order to the next requests under ``path_prefix`` ("ok" = none)."""
        unknown = set(faults) - TRANSPORT_FAULTS - PAGE_FAULTS - {"ok"}
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        with self._lock:
            self._queued.setdefault(path_prefix, deque()).extend(faults)

    def set_fault(self, path_prefix: str, fault: str | None) -> None:
        """Apply ``fault`` to every request under ``path_prefix`` until cleared (None clears)."""
        with self._lock:
            if fault is None:
                self._sticky.pop(path_prefix, None)
            else:
                self._sticky[path_prefix] = fault

    def clear_faults(self) -> None:
        with self._lock:
            self._queued.clear()
            self._sticky.clear()

    def hits(self, path_prefix: str = "/") -> list[Request]:
        """Logged requests under ``path_prefix``."""
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    def _next_fault(self, path: str) -> str | None:
        with self._lock:
            for prefix, queue in self._queued.items():
                if queue and path.startswith(prefix):
                    fault = queue.popleft()
                    return None if fault == "ok" else fault
            for prefix, fault in self._sticky.items():
                if path.startswith(prefix):
                    return fault
        return None

    # -- dispatch -----------------------------------------------------------------------------
    def rate_headers(self, limited: bool) -> dict[str, str]:
        now = time.time()
        with self._lock:
            while self._rate_window and self._rate_window[0] <= now - self.window_s:
                self._rate_window.popleft()
            used = len(self._rate_window)
            start = self._rate_window[0] if self._rate_window else now
            reset = math.ceil(start + self.window_s)
        if limited:
            reset = math.ceil(now + self.reset_after_s)
        remaining = 0 if limited else max(self.rate_limit - used, 0)
        return {
            "X-Ratelimit-Limit": str(self.rate_limit),
            "X-Ratelimit-Remaining": str(remaining),
            "X-Ratelimit-Reset": str(reset),
        }

    def dispatch(self, method: str, raw_path: str, headers: dict[str, str]) -> Response | str:
        """The response for one request, or the name of a connection-level fault."""
        parts = urlsplit(raw_path)
        req = Request(method, parts.path, parse_qs(parts.query, keep_blank_values=True), headers)
        with self._lock:
            self.requests.append(req)
            self.request_times.append(time.time())
            del self.requests[:-MAX_LOG], self.request_times[:-MAX_LOG]
            now = time.time()
            while self._rate_window and self._rate_window[0] <= now - self.window_s:
                self._rate_window.popleft()
            over = self.enforce_rate_limit and len(self._rate_window) >= self.rate_limit
            if not over:
                self._rate_window.append(time.time())
        req.fault = self._next_fault(req.path)
        if over:
            self.rejected += 1
            return Response(self.error_body(429, None), 429, self.rate_headers(False))
        if req.fault in ("timeout", "disconnect"):
            return req.fault
        if req.fault in STATUS_FAULTS:
            status = STATUS_FAULTS[req.fault]
            extra = {"Location": "https://example.invalid/elsewhere"} if status == 301 else {}
            return Response(
                self.error_body(status, req.fault),
                status,
                {**self.rate_headers(status == 429), **extra},
            )
        if req.fault == "html":
            return Response(HTML_502, 502, {"Content-Type": "text/html"})
        if req.fault == "empty_object":
            return Response({}, 200)
        if not self.authorized(req):
            return Response(self.error_body(401, None), 401)
        for m, pattern, handler in self._routes:
            match = pattern.fullmatch(req.path)
            if m == method and match:
                req.match = match.groupdict()
                try:
                    resp = handler(req)
                except Exception as err:  # a bug in the fake: answer, and keep it for asserts
                    self.errors.append(f"{req.path}: {err!r}")
                    return Response({"message": f"fake error {err!r}"}, 500)
                if req.fault == "truncated":
                    data = json.dumps(resp.body).encode()
                    resp = Response(data[: max(len(data) // 2, 1)], resp.status, resp.headers)
                return resp
        return Response(self.error_body(404, None), 404)


class LoopbackHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 handler of the loopback fakes: quiet, NODELAY, with the two ways to
    answer (``_reply`` a body, ``_drop`` the connection). Subclasses write ``_serve``."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus delayed ACK
        # adds ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the default stderr access log."""

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _drop(self) -> None:
        """Close the connection without an answer (a disconnect fault)."""
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _serve(self) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_GET


class _Handler(LoopbackHandler):
    fake: FakeServer

    def _serve(self) -> None:
        self._body()
        out = self.fake.dispatch(self.command, self.path, dict(self.headers.items()))
        if out == "timeout":
            time.sleep(self.fake.timeout_sleep_s)
            out = Response({"message": "late"}, 200)
        if out == "disconnect":
            self._drop()
            return
        assert isinstance(out, Response)
        body = out.body if isinstance(out.body, bytes) else json.dumps(out.body).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            **self.fake.rate_headers(False),
            **out.headers,
        }
        self._reply(out.status, headers, body)
