"""Session fixtures shared by every package's tests: a year lake and its sweeps, built once.

Registered once through ``pytest_plugins`` in ``tests/conftest.py``; importing these fixtures into
another conftest would define them a second time and build the year lake and the sweeps twice.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.defs.research.assets import SWEEPS, leaderboard, walk_forward
from alpaca_improved_pipelines.defs.resources import build_resources
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.settings import Settings
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars, minute_bars

SYMBOLS = ("SPY", "AAPL", "XOM")
SESSIONS = cal.sessions_between(dt.date(2024, 1, 2), dt.date(2024, 12, 31))


def fill_lake(home: Path) -> None:
    """Daily and minute bars of every session (the minute family sweeps stock_bars_1m)."""
    for s in SESSIONS:
        storage.write_partition(
            daily_bars(7, SYMBOLS, s), home / "lake", "stock_bars_1d", s, fsync=False
        )
        storage.write_partition(
            minute_bars(7, SYMBOLS, s), home / "lake", "stock_bars_1m", s, fsync=False
        )


@pytest.fixture(scope="session")
def year_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("research") / "home"
    fill_lake(home)
    return home


def resources_for(home: Path) -> dict[str, object]:
    return build_resources(Settings(home=home, symbols=SYMBOLS, fsync=False))


def quiet(extra: dict | None = None) -> dict:
    return {"loggers": {"console": {"config": {"log_level": "ERROR"}}}, **(extra or {})}


def one_worker(*names: str) -> dict:
    """Run config running the sweeps of ``names`` in this process."""
    return {"ops": {f"{n}_sweep": {"config": {"workers": 1}} for n in names}}


SMALL = one_worker(*SWEEPS)


@pytest.fixture(scope="session")
def swept(year_home: Path):
    """Every registered family's sweep (from the registry), walk-forward and the leaderboard."""
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [*SWEEPS.values(), walk_forward, leaderboard],
            resources=resources_for(year_home),
            instance=instance,
            run_config=quiet(SMALL),
        )
        assert res.success
        yield year_home, res
