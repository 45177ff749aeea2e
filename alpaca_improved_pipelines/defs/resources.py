"""Resources bound in one place, from the environment (``ALPACA_IMPROVED_*``).

Source selection (no code change to switch): ``ALPACA_IMPROVED_SOURCE=synthetic|alpaca|polygon``
and optionally ``ALPACA_IMPROVED_FALLBACK_SOURCE`` (a secondary that fills a session the primary
fails). Vendor settings: ``ALPACA_DATA_URL``, ``ALPACA_TRADING_URL``, ``ALPACA_FEED``,
``ALPACA_OPTIONS_FEED``, ``POLYGON_BASE_URL``, ``ALPACA_IMPROVED_ADJUSTMENT``,
``ALPACA_REQUESTS_PER_MINUTE`` (default 200), ``POLYGON_REQUESTS_PER_MINUTE`` (free plan: 5). Keys
(``ALPACA_API_KEY``, ``ALPACA_SECRET_KEY``, ``POLYGON_API_KEY``) are read by the sources from the
environment when they first call the vendor; they are never resource config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.sources import MarketDataSource, SyntheticSource
from alpaca_improved_pipelines.resources.tracking import TrackingResource
from alpaca_improved_pipelines.resources.universe import UniverseResource
from alpaca_improved_pipelines.settings import Settings, load_settings

SOURCES = ("synthetic", "alpaca", "polygon")
# Dagster concurrency pools (limits in dagster.yaml ``concurrency.pools``; default 1 step at a
# time per pool across all runs; ``dagster instance concurrency set <pool> N`` raises one): every
# asset that calls a vendor API is in VENDOR_POOL, every asset that logs to MLflow in MLFLOW_POOL
# (proven by tests/pipelines/test_definitions.py from their resource keys).
VENDOR_POOL = "vendor_api"
MLFLOW_POOL = "mlflow"
ALPACA_FEEDS = ("iex", "sip", "delayed_sip", "otc", "boats", "overnight")
ADJUSTMENTS = {"alpaca": ("raw", "split", "dividend", "all"), "polygon": ("raw", "split")}


def _choice(env: Mapping[str, str], var: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(var) or default).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{var}={value!r} is not one of {', '.join(allowed)}")
    return value


def _per_minute(env: Mapping[str, str], var: str, default: int | None) -> int | None:
    raw = (env.get(var) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{var}={raw!r} must be a positive whole number of requests per minute")
    return int(raw)


def fallback_source_name(environ: Mapping[str, str] | None = None) -> str | None:
    """The secondary source named by ``ALPACA_IMPROVED_FALLBACK_SOURCE``, or None."""
    env = os.environ if environ is None else environ
    if not (env.get("ALPACA_IMPROVED_FALLBACK_SOURCE") or "").strip():
        return None
    return _choice(env, "ALPACA_IMPROVED_FALLBACK_SOURCE", "", SOURCES)


def vendor_source(
    name: str, settings: Settings, environ: Mapping[str, str] | None = None
) -> MarketDataSource:
    """One source by name, configured from the environment (keys excepted)."""
    env = os.environ if environ is None else environ
    if name == "synthetic":
        return SyntheticSource(seed=settings.seed)
    if name not in ADJUSTMENTS:
        raise ConfigError(f"source {name!r} is not one of {', '.join(SOURCES)}")
    adjustment = _choice(env, "ALPACA_IMPROVED_ADJUSTMENT", "raw", ADJUSTMENTS[name])
    if name == "alpaca":
        from alpaca_improved_pipelines.sources.vendors.alpaca import AlpacaSource

        return AlpacaSource(
            data_url=env.get("ALPACA_DATA_URL") or None,
            trading_url=env.get("ALPACA_TRADING_URL") or None,
            feed=_choice(env, "ALPACA_FEED", "sip", ALPACA_FEEDS),
            options_feed=_choice(env, "ALPACA_OPTIONS_FEED", "indicative", ("indicative", "opra")),
            adjustment=adjustment,
            requests_per_minute=_per_minute(env, "ALPACA_REQUESTS_PER_MINUTE", 200),
        )
    from alpaca_improved_pipelines.sources.vendors.polygon import DEFAULT_BASE, PolygonSource

    return PolygonSource(
        base_url=env.get("POLYGON_BASE_URL") or DEFAULT_BASE,
        adjustment=adjustment,
        requests_per_minute=_per_minute(env, "POLYGON_REQUESTS_PER_MINUTE", None),
    )


def build_source(settings: Settings, environ: Mapping[str, str] | None = None) -> MarketDataSource:
    """The market-data source named by ``ALPACA_IMPROVED_SOURCE`` (with its fallback, if any)."""
    primary = vendor_source(settings.source, settings, environ)
    secondary_name = fallback_source_name(environ)
    if secondary_name is None:
        return primary
    if secondary_name == settings.source:
        raise ConfigError(
            f"ALPACA_IMPROVED_FALLBACK_SOURCE={secondary_name!r} is the primary "
            "source too; name a different source or unset it"
        )
    from alpaca_improved_pipelines.sources.vendors.fallback import FallbackSource

    return FallbackSource(
        primary=primary, secondary=vendor_source(secondary_name, settings, environ)
    )


def build_resources(settings: Settings) -> dict[str, object]:
    """Resource instances for ``settings`` (tests call this with a temp data root)."""
    return {
        "lake": LakeResource(home=str(settings.home.resolve()), fsync=settings.fsync),
        "source": build_source(settings),
        "universe": UniverseResource(symbols=list(settings.symbols)),
        "tracking": TrackingResource(home=str(settings.home.resolve())),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources(load_settings()))
