"""Serve recorded vendor bodies (shared/vendor-fixtures) by request path, as pook did for them.

File names are the request path with ``/`` as ``__``, ``:`` as ``_C_`` and ``?`` as ``_Q_``; a
request matches the file for its path and query, or else the file for its path alone.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from tests.fakes.base import FakeServer, Request, Response

FIXTURES = Path("/work/shared/vendor-fixtures/polygon")


def fixture_name(path: str, query: str = "") -> str:
    name = path.lstrip("/").replace("/", "__").replace(":", "_C_")
    return f"{name}_Q_{query}.json" if query else f"{name}.json"


class RecordedFake(FakeServer):
    """Answers GETs with the bytes of the matching recorded file (404 when none matches)."""

    vendor = "recorded"

    def __init__(self, directory: Path = FIXTURES, **kwargs: object) -> None:
        self.directory = directory
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def register_routes(self) -> None:
        super().register_routes()
        self.route("GET", r"/.*", self.serve)

    def serve(self, req: Request) -> Response:
        query = urlencode([(k, v) for k, vs in req.query.items() for v in vs])
        for name in (fixture_name(req.path, query), fixture_name(req.path)):
            file = self.directory / name
            if file.is_file():
                return Response(file.read_bytes())
        return Response({"status": "NOT_FOUND", "message": f"no fixture for {req.path}"}, 404)
