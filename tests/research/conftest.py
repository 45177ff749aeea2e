"""Fixtures for research tests (the shared year lake and sweeps live in ``tests.research_lake``)."""

from __future__ import annotations

import dagster as dg
import pytest

from tests.research_lake import (  # noqa: F401 (helpers the research and promotion tests import)
    SESSIONS,
    SMALL,
    SYMBOLS,
    fill_lake,
    one_worker,
    quiet,
    resources_for,
)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst
