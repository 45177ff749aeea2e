"""Fixtures for pipeline tests: a temp data root, real resources, a real Dagster instance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from alpaca_improved_pipelines.definitions import defs as load_defs
from alpaca_improved_pipelines.defs.resources import build_resources
from alpaca_improved_pipelines.settings import Settings

SYMBOLS = ("SPY", "AAPL", "NVDA")
BAR_TABLES = ("stock_bars_1m", "stock_bars_1d", "stock_bars_5m", "stock_bars_1h")


@pytest.fixture(scope="session")
def project_defs() -> dg.Definitions:
    return load_defs()


def make_settings(home: Path, **kw: object) -> Settings:
    base: dict[str, object] = {"home": home, "symbols": SYMBOLS, "fsync": False}
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def with_resources(project_defs: dg.Definitions, resources: dict[str, object]) -> dg.Definitions:
    """The project's assets, checks and jobs bound to test resources."""
    return dg.Definitions(
        assets=list(project_defs.assets or []),
        asset_checks=list(project_defs.asset_checks or []),
        jobs=list(project_defs.jobs or []),
        resources=resources,
    )


def run_sessions(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    start: str,
    end: str,
    run_config: dict | None = None,
    bars_only: bool = False,
) -> dg.ExecuteInProcessResult:
    """One run of market_data_job (or an asset selection) over the session range [start, end]."""
    tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
    job = defs.resolve_job_def("market_data_job")
    if bars_only:  # indicators need their lookback history; bar-only runs do not
        job = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={dg.AssetKey(t) for t in BAR_TABLES},
            asset_check_selection=None,
        )
    return job.execute_in_process(
        instance=instance, tags=tags, run_config=run_config, raise_on_error=False
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def test_defs(project_defs: dg.Definitions, home: Path) -> dg.Definitions:
    return with_resources(project_defs, build_resources(make_settings(home)))


def session(s: str) -> dt.date:
    return dt.date.fromisoformat(s)
