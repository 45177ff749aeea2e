"""Approved manifests on disk: :class:`contracts.manifest.DeploymentManifest` files under the
contracts' layout (``<home>/live/manifests``), what the live runner deploys."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from contracts import paths
from contracts.errors import ContractError
from contracts.manifest import DeploymentManifest, read_manifest


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temp file in the same directory, fsync, rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w") as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def manifest_path(home: Path, manifest_id: str) -> Path:
    """``<home>/live/manifests/<manifest id>.json``."""
    return paths.manifests_dir(home) / f"{manifest_id}.json"


def read_manifests(home: Path) -> tuple[dict[str, DeploymentManifest], list[str]]:
    """Every approved manifest by id, and one message per file that does not validate."""
    out: dict[str, DeploymentManifest] = {}
    invalid: list[str] = []
    for path in sorted(paths.manifests_dir(home).glob("*.json")):
        try:
            manifest = read_manifest(path)
        except ContractError as exc:
            invalid.append(str(exc))
            continue
        out[manifest.manifest_id] = manifest
    return out, invalid
