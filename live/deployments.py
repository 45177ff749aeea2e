"""Deployment manifests: ``<home>/live/deployments/*.json``, validated and turned into strategies.

A manifest names the strategy family, its interface version, parameters and risk limits (the
promote-to-live sensor writes them). The runner rescans the directory between cycles only; a
changed manifest is applied once its deployment has no open orders (never mid-order), and an
invalid one is reported and skipped (the previous version, if any, keeps running).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from live.errors import ConfigError
from live.risk_limits import RiskLimits
from strategies.base import Strategy, get_strategy_class


class DeploymentManifest(BaseModel):
    """One approved deployment (extra keys are refused so typos cannot pass silently).

    Attributes:
        manifest_id: Id of the approved manifest (traceability to MLflow/approval).
        strategy: Registered strategy family name.
        interface_version: Must equal the family's ``interface_version``.
        params: Strategy config (JSON lists become tuples).
        risk_limits: The deployment's frozen limits.
        capital: Capital allotted to this deployment (its book's starting cash).
        enabled: False parks the deployment (no new decisions).
        deployment_id: Defaults to the file name without ``.json``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    manifest_id: str = Field(min_length=1)
    strategy: str = Field(min_length=1)
    interface_version: int = Field(ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    risk_limits: RiskLimits = RiskLimits()
    capital: float = Field(default=100_000.0, gt=0)
    enabled: bool = True
    deployment_id: str | None = None
    git_sha: str = ""
    data_versions: dict[str, Any] = Field(default_factory=dict)
    mlflow_run_id: str = ""
    approval: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Deployment:
    """A loaded, validated deployment."""

    id: str
    manifest: DeploymentManifest
    strategy: Strategy
    fingerprint: str
    path: Path


def _tuples(value: Any) -> Any:
    """JSON lists as tuples (strategy configs are frozen dataclasses with tuple fields)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def load_manifest(path: Path) -> Deployment:
    """Validate one manifest file into a :class:`Deployment`.

    Raises:
        ConfigError: Naming the file and what is wrong with it.
    """
    raw = path.read_bytes()
    try:
        manifest = DeploymentManifest.model_validate(json.loads(raw))
        cls = get_strategy_class(manifest.strategy)
    except (ValueError, ValidationError, KeyError) as exc:
        raise ConfigError(f"{path.name}: invalid deployment manifest: {exc}") from exc
    if manifest.interface_version != cls.interface_version:
        raise ConfigError(
            f"{path.name}: strategy {manifest.strategy!r} has interface version "
            f"{cls.interface_version}, manifest says {manifest.interface_version}"
        )
    try:
        strategy = cls.from_params(_tuples(manifest.params))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path.name}: invalid params for {manifest.strategy}: {exc}") from exc
    dep_id = manifest.deployment_id or path.stem
    return Deployment(dep_id, manifest, strategy, hashlib.sha256(raw).hexdigest(), path)


def scan(directory: Path) -> dict[Path, str]:
    """``path -> sha256`` of every manifest in ``directory`` (empty when it does not exist)."""
    if not directory.is_dir():
        return {}
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.glob("*.json"))
        if p.is_file()
    }


def write_manifest(directory: Path, name: str, manifest: dict[str, Any]) -> Path:
    """Write a manifest atomically (temp file + rename), e.g. from tests or the promotion step."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    tmp = directory / f".{name}.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(path)
    return path
