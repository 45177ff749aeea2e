"""Following page tokens or next URLs with a page cap and cycle detection (both vendors)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from alpaca_improved_pipelines.sources.vendors.errors import PermanentVendorError


def walk_pages(
    fetch: Callable[[str | None, int], tuple[Any, str | None]],
    what: str,
    max_pages: int,
    vendor: str,
    on_event: Callable[[str, float], None],
) -> Iterator[Any]:
    """Follow page tokens (or next URLs) from ``fetch`` at most ``max_pages`` times.

    A token seen before means the vendor is looping; more than ``max_pages`` pages means the
    request is too wide. Both raise rather than return a partial result.
    """
    seen: set[str] = set()
    token: str | None = None
    for n in range(1, max_pages + 1):
        payload, token = fetch(token, n)
        on_event("pages", 1)
        yield payload
        if not token:
            return
        if token in seen:
            raise PermanentVendorError(
                f"{vendor} {what}: the page token/next URL repeated after {n} pages (the vendor "
                "is looping); refusing a partial result"
            )
        seen.add(token)
    raise PermanentVendorError(
        f"{vendor} {what}: still more pages after {max_pages}; raise max_pages or narrow the "
        "request"
    )
