"""Approved manifests: what the live runner deploys, traceable to research and approval."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def live_dir(home: Path) -> Path:
    return home / "live"


def manifests_dir(home: Path) -> Path:
    return live_dir(home) / "manifests"


def deployments_dir(home: Path) -> Path:
    return live_dir(home) / "deployments"


def fingerprint(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temp file in the same directory, fsync, rename over ``path``."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w") as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifests(home: Path) -> dict[str, dict[str, Any]]:
    """Every approved manifest by id."""
    out = {}
    for path in sorted(manifests_dir(home).glob("*.json")):
        data = json.loads(path.read_text())
        out[data["manifest_id"]] = data
    return out
