"""Which payment provider runs, and the secrets it reads (environment or mounted files only).

``STRIPE_API_KEY`` (or ``STRIPE_API_KEY_FILE``) set selects Stripe; otherwise the embedded local
provider runs, which needs no keys. A ``*_FILE`` variable names a mounted secret file and beats
the plain variable (the convention of :mod:`signals.telegram.config`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from sqlalchemy.engine import Engine

from signals.payments.base import PaymentProvider

PUBLIC_URL_ENV = "ALPACA_IMPROVED_SIGNALS_PUBLIC_URL"  # where the service's pages are reachable


def make_provider(
    engine: Engine,
    environ: Mapping[str, str],
    clock: Callable[[], dt.datetime] | None = None,
) -> PaymentProvider:
    """Stripe when a Stripe key is configured, else the local provider (module docstring)."""
    if environ.get("STRIPE_API_KEY") or environ.get("STRIPE_API_KEY_FILE"):
        from signals.payments.stripe_provider import StripeProvider

        return StripeProvider.from_env(environ)
    from signals.payments.local import LocalProvider

    public = environ.get(PUBLIC_URL_ENV, "http://127.0.0.1:8080").rstrip("/")
    return LocalProvider(engine, public_url=public, clock=clock)
