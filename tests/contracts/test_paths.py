"""The data-root layout is one module; pipelines, research and live resolve the same paths."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from alpaca_improved_pipelines.defs.monitoring.journal_io import journal_path
from alpaca_improved_pipelines.settings import Settings, load_settings
from contracts import paths
from live.runner.build import resolve_home
from live.runner.config import RunnerConfig
from research import experiments, lakehouse


def test_home_comes_from_the_environment_or_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert paths.home_from_env({}) == Path(".alpaca_improved")
    assert paths.home_from_env({"ALPACA_IMPROVED_HOME": ""}) == Path(".alpaca_improved")
    assert paths.home_from_env({"ALPACA_IMPROVED_HOME": "/data/x"}) == Path("/data/x")
    monkeypatch.setenv("ALPACA_IMPROVED_HOME", "/data/y")
    assert load_settings().home == Path("/data/y")
    assert lakehouse.default_home() == Path("/data/y")
    assert resolve_home() == Path("/data/y")
    assert resolve_home(env={}) == Path(".alpaca_improved").resolve()


def test_every_process_resolves_the_same_layout(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home)
    assert settings.lake == paths.lake_dir(home) == home / "lake"
    assert settings.dagster_home == paths.dagster_home(home) == home / "dagster_home"
    assert settings.data_docs == paths.data_docs(home)
    db = (home / "mlflow.db").resolve()
    assert settings.mlflow_uri == experiments.tracking_uri(home) == f"sqlite:///{db}"
    assert paths.mlflow_artifacts(home) == home / "mlartifacts"
    journal = home / "live" / "journal.sqlite"
    assert RunnerConfig(home=home).journal_path == journal_path(home) == journal
    assert paths.manifests_dir(home) == home / "live" / "manifests"
    assert paths.deployments_dir(home) == home / "live" / "deployments"
    assert paths.candidates_path(home) == home / "live" / "candidates.json"
    assert paths.sim_broker_path(home) == home / "live" / "sim_broker.jsonl"
    assert paths.replays_dir(home) == home / "live" / "replays"
    assert paths.sweeps_dir(home) == home / "sweeps"


ROOT = Path(__file__).resolve().parents[2]
# directories of the data root, and names that can only mean a file of it
JOINED = {"lake", "live", "manifests", "deployments", "replays", "sweeps"}
FILES = {".alpaca_improved", "ALPACA_IMPROVED_HOME", "journal.sqlite", "mlflow.db",
         "mlartifacts", "dagster_home", "candidates.json", "sim_broker.jsonl"}  # fmt: skip


def test_the_layout_is_spelled_once() -> None:
    """No package but contracts/paths.py joins a root directory onto a path or names a file of
    the root: they all ask contracts.paths, so the layout cannot drift between processes."""
    offenders = []
    for package in ("alpaca_improved_pipelines", "research", "live", "contracts", "strategies"):
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "contracts" / "paths.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                joined = (
                    isinstance(node, ast.BinOp)
                    and isinstance(node.op, ast.Div)
                    and isinstance(node.right, ast.Constant)
                    and node.right.value in JOINED
                )
                named = isinstance(node, ast.Constant) and node.value in FILES
                if joined or named:
                    offenders.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}")
    assert not offenders, f"use contracts.paths: {offenders}"
