"""Deployment manifests: ``<home>/live/deployments/*.json``, validated and turned into strategies.

A manifest is :class:`contracts.manifest.DeploymentManifest` (the promote-to-live sensor writes
it): the strategy family, its interface version, params, capital, every risk limit, costs,
versions and approval. A strategy that names a trained model (``gbm_signal``) gets exactly that
model version, verified by its sha256, before it is returned (:mod:`live.models`). The runner
rescans the directory between cycles only; a changed manifest is applied once its deployment has
no open orders (never mid-order), and an invalid one is reported and skipped (the previous
version, if any, keeps running).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.errors import ContractError
from contracts.manifest import DeploymentManifest, parse_manifest
from contracts.manifest import write_manifest as write_manifest_file
from live.errors import ConfigError
from live.models import home_of, load_model
from strategies.base import Strategy, get_strategy_class


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
        manifest = parse_manifest(raw, path.name)
        cls = get_strategy_class(manifest.strategy)
    except ContractError as exc:
        raise ConfigError(str(exc)) from None
    except KeyError as exc:
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
    load_model(strategy, path.name, home_of(path))  # an ML family's model, verified by hash
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


def write_manifest(
    directory: Path, name: str, manifest: DeploymentManifest | dict[str, Any]
) -> Path:
    """Write a manifest atomically (temp file + rename) as ``<directory>/<name>.json``.

    A :class:`DeploymentManifest` is written as the promotion step writes it; a dict is written
    as given, valid or not (tests use it to write broken manifests on purpose).
    """
    if isinstance(manifest, DeploymentManifest):
        return write_manifest_file(directory / f"{name}.json", manifest, fsync=False)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    tmp = directory / f".{name}.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(path)
    return path
