"""Fixtures for the options tests: enriched synthetic chains, a temp lake, a Dagster instance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from alpaca_improved_pipelines.definitions import defs as load_defs
from alpaca_improved_pipelines.defs.options.chains import enrich
from alpaca_improved_pipelines.defs.options.config import ChainConfig, curve_rates, dividend_yield
from alpaca_improved_pipelines.defs.resources import build_resources
from alpaca_improved_pipelines.settings import Settings
from alpaca_improved_pipelines.sources.synthetic_options import synthetic_chain

SEED = 7
SESSION = dt.date(2024, 1, 10)
SYMBOLS = ("SPY", "AAPL", "NVDA")


def enriched(underlyings: tuple[str, ...], session: dt.date = SESSION) -> pl.DataFrame:
    """Synthetic chains of ``underlyings`` with our IV and Greeks (default run config)."""
    config = ChainConfig()
    raw = pl.concat([synthetic_chain(SEED, u, session) for u in underlyings])
    yields = {u: dividend_yield(config, u) for u in underlyings}
    return enrich(raw, session, partial(curve_rates, config.rate_curve), yields)


@pytest.fixture(scope="session")
def chain() -> pl.DataFrame:
    """SPY, AAPL and NVDA chains on 2024-01-10, enriched."""
    return enriched(SYMBOLS)


@pytest.fixture(scope="session")
def project_defs() -> dg.Definitions:
    return load_defs()


def options_defs(
    project_defs: dg.Definitions, home: Path, resources: dict[str, object] | None = None
) -> dg.Definitions:
    """The project's assets, checks and jobs bound to resources on a temp data root."""
    settings = Settings(home=home, symbols=SYMBOLS, fsync=False)  # type: ignore[arg-type]
    return dg.Definitions(
        assets=list(project_defs.assets or []),
        asset_checks=list(project_defs.asset_checks or []),
        jobs=list(project_defs.jobs or []),
        resources={**build_resources(settings), **(resources or {})},
    )


def run_options(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    start: str,
    end: str,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """One run of options_job over the session range [start, end]."""
    tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
    return defs.resolve_job_def("options_job").execute_in_process(
        instance=instance, tags=tags, run_config=run_config, raise_on_error=False
    )


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst
