"""DESIGN.md's import rules, proven both at run time and statically."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from signals import LIVE_MODULES_ALLOWED

ROOT = Path(__file__).resolve().parents[2]
OURS = {
    "alpaca_improved_pipelines", "contracts", "research", "strategies", "live", "signals", "tests",
}  # fmt: skip
ALLOWED_OURS = {
    "strategies": set(),
    "contracts": {"strategies"},
    "research": {"strategies", "contracts"},
    "live": {"strategies", "contracts"},
    "signals": {"strategies", "contracts", "live"},
    "alpaca_improved_pipelines": {"strategies", "contracts", "research"},
}
# pythonjsonlogger: the one log-line format every process writes (contracts.logs); redis: the
# vendor budgets every process shares (contracts.budget); boto3/botocore/fsspec: the lake on S3
# (contracts.lake_store, imported only when ALPACA_IMPROVED_LAKE_URI is set)
CONTRACTS_THIRD_PARTY = {
    "pydantic", "pyarrow", "polars", "exchange_calendars", "numpy", "pandas", "pythonjsonlogger",
    "redis", "boto3", "botocore", "fsspec",
}  # fmt: skip
STRATEGIES_THIRD_PARTY = {"numpy", "polars", "pandas", "scipy", "numba"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _modules(path: Path) -> set[str]:
    """Full dotted names of the absolute imports of ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED_OURS))
def test_static_imports_follow_the_rules(package: str) -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in (ROOT / package).rglob("*.py"):
        names = _imports(path)
        ours = (names & OURS) - {package}
        assert ours <= ALLOWED_OURS[package], f"{path} imports {ours}"
        if package == "strategies":
            third = names - stdlib - OURS
            assert third <= STRATEGIES_THIRD_PARTY, f"{path} imports {third}"
        if package == "contracts":
            third = names - stdlib - OURS
            assert third <= CONTRACTS_THIRD_PARTY, f"{path} imports {third}"
        if package in ("live", "signals"):
            assert "dagster" not in names, f"{path} imports dagster"
        if package == "signals":
            bad = sorted(
                m
                for m in _modules(path)
                if m.startswith("live")
                and not any(m == ok or m.startswith(ok + ".") for ok in LIVE_MODULES_ALLOWED)
            )
            assert not bad, f"{path} imports {bad}: signals may use only {LIVE_MODULES_ALLOWED}"


@pytest.mark.parametrize(
    "module", ["contracts", "live", "signals", "strategies", "research.lakehouse"]
)
def test_importing_does_not_load_dagster(module: str) -> None:
    code = (
        f"import importlib, pkgutil, sys\nimport {module} as m\n"
        "if hasattr(m, '__path__'):\n"
        "    for info in pkgutil.walk_packages(m.__path__, m.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in "
        "('dagster', 'alpaca_improved_pipelines'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"{module} pulled in: {out.stdout.strip()}"
