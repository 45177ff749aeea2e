"""Vendor error taxonomy: which failures a retry can help, and messages that never carry a key.

``TransientVendorError`` (429, 5xx, timeouts, connection resets) is retried by our HTTP layer and,
once that budget is spent, by the asset's Dagster ``RetryPolicy``. ``PermanentVendorError`` (bad
keys, a plan that forbids the data, malformed or cyclic pages) is also a ``dg.Failure`` with
``allow_retries=False``, so Dagster fails the partition at once instead of repeating a request
that cannot succeed.
"""

from __future__ import annotations

import os

import dagster as dg

from alpaca_improved_pipelines.errors import ConfigError, SourceError, TransientSourceError

# Environment variables whose values must never appear in a message, log line or metadata value.
SECRET_VARS = ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "POLYGON_API_KEY")
TRANSIENT_STATUS = frozenset({408, 425, 429, 499, 500, 502, 503, 504})
BODY_EXCERPT = 200


def scrub(text: str) -> str:
    """``text`` with the value of every key variable replaced by ``***``."""
    for var in SECRET_VARS:
        value = os.environ.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def excerpt(body: str | bytes | None) -> str:
    """A short, key-free, single-line excerpt of a response body for an error message."""
    if body is None:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    flat = " ".join(body.split())
    return scrub(flat[:BODY_EXCERPT] + ("…" if len(flat) > BODY_EXCERPT else ""))


class TransientVendorError(TransientSourceError):
    """A vendor call failed in a way a retry may fix.

    Attributes:
        status: HTTP status when there was a response (None for timeouts and resets).
        retry_after: Seconds the vendor asked us to wait (from ``X-Ratelimit-Reset`` or
            ``Retry-After``), or None.
    """

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(scrub(message))
        self.status = status
        self.retry_after = retry_after


class PermanentVendorError(SourceError, dg.Failure):
    """A vendor call failed in a way retrying cannot fix; Dagster must not retry the partition."""

    def __init__(self, message: str, status: int | None = None) -> None:
        dg.Failure.__init__(self, description=scrub(message), allow_retries=False)
        self.status = status


class VendorConfigError(ConfigError, dg.Failure):
    """A vendor setting is wrong; fails the run at once (retrying cannot fix configuration)."""

    def __init__(self, message: str) -> None:
        dg.Failure.__init__(self, description=scrub(message), allow_retries=False)


class MissingKeyError(VendorConfigError):
    """A key variable is unset; the message names the variable (never a value)."""

    def __init__(self, var: str, source: str) -> None:
        super().__init__(
            f"{var} is not set: the {source} source needs it. Export {var} in the environment "
            "of the Dagster code location and run workers (keys are read from the environment "
            "only, never from run config)"
        )
        self.var = var


def read_key(var: str, source: str) -> str:
    """The value of key variable ``var``, or MissingKeyError naming it."""
    value = os.environ.get(var, "").strip()
    if not value:
        raise MissingKeyError(var, source)
    return value


def classify_status(
    vendor: str, what: str, status: int, body: str | bytes | None, retry_after: float | None = None
) -> SourceError:
    """The error for a non-success HTTP ``status`` from ``vendor`` while fetching ``what``."""
    text = excerpt(body)
    lowered = text.lower()
    if status in TRANSIENT_STATUS:
        return TransientVendorError(
            f"{vendor} {what}: HTTP {status} (transient) {text}",
            status=status,
            retry_after=retry_after,
        )
    if 300 <= status < 400:
        return PermanentVendorError(
            f"{vendor} {what}: HTTP {status} redirect refused (redirects are never followed so "
            "keys cannot leak); point the base URL at the final https host",
            status=status,
        )
    if status == 401:
        return PermanentVendorError(
            f"{vendor} {what}: HTTP 401 the API keys were rejected; check the key variables "
            f"for {vendor} {text}",
            status=status,
        )
    if status == 403:
        cause = (
            "the plan does not permit this feed or data window"
            if any(w in lowered for w in ("subscription", "plan", "entitled"))
            else "the keys are not allowed to make this request"
        )
        return PermanentVendorError(f"{vendor} {what}: HTTP 403 {cause} {text}", status=status)
    return PermanentVendorError(f"{vendor} {what}: HTTP {status} {text}", status=status)
