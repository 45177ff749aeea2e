"""Classify alpaca-py and transport failures into errors that say what helps.

``APIError.code``/``.message`` call ``json.loads`` on the body and raise on an HTML 502 page, so
the body is parsed here, tolerantly, once.
"""

from __future__ import annotations

import json
import re
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from pydantic import ValidationError

from live.errors import (
    AmbiguousSubmit,
    AuthRejected,
    BrokerError,
    LiveModeRefused,
    MalformedResponse,
    OrderNotFound,
    OrderRejected,
    RetryableBrokerError,
)

DUPLICATE_CODE = 40010001
_TAGS = re.compile(r"<[^>]+>")


def body_fields(text: str) -> tuple[int | None, str]:
    """(code, message) of an error body; tolerates HTML, truncation and non-objects."""
    try:
        data: Any = json.loads(text)
    except (TypeError, ValueError):
        return None, " ".join(_TAGS.sub(" ", text or "").split())[:200]
    if not isinstance(data, dict):
        return None, str(data)[:200]
    code = data.get("code")
    return (code if isinstance(code, int) else None), str(data.get("message", ""))[:200]


def classify(exc: BaseException, op: str, client_order_id: str = "") -> BaseException:
    """The :mod:`live.errors` error for ``exc`` raised by operation ``op``.

    ``op == "submit"`` (and ``"replace"``) changes state: anything that leaves the outcome unknown
    (5xx, timeouts, resets, unreadable 2xx bodies, a duplicate-id 422 after our own send) becomes
    :class:`AmbiguousSubmit`; definitive 4xx answers become :class:`OrderRejected`; 429 means
    the request was not processed and can be retried.
    """
    mutating = op in ("submit", "replace")
    if mutating and isinstance(exc, MalformedResponse):
        return AmbiguousSubmit(str(exc), client_order_id, exc.status)
    if isinstance(exc, LiveModeRefused | BrokerError):
        return exc
    if isinstance(exc, APIError):
        return _api_error(exc, op, mutating, client_order_id)
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        msg = f"{op}: transport failure {type(exc).__name__}"
        return AmbiguousSubmit(msg, client_order_id) if mutating else RetryableBrokerError(msg)
    if isinstance(exc, ValueError | ValidationError | TypeError | KeyError):
        msg = f"{op}: malformed response ({type(exc).__name__}: {str(exc)[:120]})"
        return AmbiguousSubmit(msg, client_order_id) if mutating else MalformedResponse(msg)
    return exc


def _api_error(exc: APIError, op: str, mutating: bool, cid: str) -> BrokerError:
    status = exc.status_code
    code, message = body_fields(str(exc))
    text = f"{op}: HTTP {status} code {code}: {message}"
    if status == 401:  # refused before anything was processed, a submit included
        return AuthRejected(text, status, code)
    if status == 429:
        return RetryableBrokerError(text, status, code)
    if mutating:
        if status == 422 and code == DUPLICATE_CODE:
            return AmbiguousSubmit(text, cid, status, code)  # maybe ours: look it up
        if status is None or status >= 500 or 300 <= status < 400:
            return AmbiguousSubmit(text, cid, status, code)
        if status in (400, 403, 404, 422):
            return OrderRejected(text, status, code)
        return BrokerError(text, status, code)
    if status == 404:
        return OrderNotFound(text, status, code)
    if status is None or status >= 500:
        return RetryableBrokerError(text, status, code)
    return BrokerError(text, status, code)
