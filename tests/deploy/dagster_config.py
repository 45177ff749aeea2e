"""Check a deployment's dagster.yaml with Dagster's own schemas (no instance, no database).

The instance's top-level schema (unknown or mistyped sections, incompatible run limits), each
configurable class's config schema (the run launcher, the run coordinator), the workspace schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def check_instance_yaml(text: str, workdir: Path) -> dict[str, Any]:
    """Validate the text as ``dagster.yaml`` and return it parsed (raises on a bad section)."""
    from dagster._core.instance.config import dagster_instance_config

    (workdir / "dagster.yaml").write_text(text)
    dagster_instance_config(str(workdir))
    parsed: dict[str, Any] = yaml.safe_load(text)
    return parsed


def check_class_config(cls: Any, config: dict[str, Any]) -> None:
    """Assert ``config`` passes ``cls.config_type()`` (a run launcher, a run coordinator)."""
    from dagster._config import validate_config

    result = validate_config(cls.config_type(), config)
    assert result.success, [e.message for e in result.errors or ()]


def check_workspace_yaml(text: str) -> dict[str, Any]:
    """Validate the text as ``workspace.yaml`` (Dagster's workspace schema); return it parsed."""
    from dagster._core.workspace.config_schema import ensure_workspace_config

    parsed: dict[str, Any] = yaml.safe_load(text)
    ensure_workspace_config(parsed, "workspace.yaml")
    return parsed
