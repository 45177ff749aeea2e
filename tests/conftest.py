"""Project-wide pytest configuration (keep generic: package fixtures live in package conftests)."""

from __future__ import annotations

import os

import pytest

# One registration of the shared session fixtures (the year lake and its sweeps build once;
# a real PostgreSQL or Redis server starts only for tests that ask for it).
pytest_plugins = [
    "tests.research_lake",
    "tests.postgres_server",
    "tests.redis_server",
    "tests.s3_server",
]

REAL_KEYS_OPT_IN = "ALPACA_IMPROVED_REAL_KEYS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``real_keys`` tests unless ``ALPACA_IMPROVED_REAL_KEYS=1`` opts in."""
    if os.environ.get(REAL_KEYS_OPT_IN) == "1":
        return
    skip = pytest.mark.skip(
        reason=f"talks to real vendor APIs: set {REAL_KEYS_OPT_IN}=1 and the "
        "vendor key variables to run"
    )
    for item in items:
        if "real_keys" in item.keywords:
            item.add_marker(skip)
