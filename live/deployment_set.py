"""The runner's set of active deployments, refreshed from the manifest directory between cycles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from live.clock import Clock
from live.deployments import Deployment, load_manifest, scan
from live.errors import ConfigError
from live.journal import Journal


class DeploymentSet:
    """Loads new/changed manifests (deferring busy deployments) and drops removed ones."""

    def __init__(
        self, directory: Path, journal: Journal, clock: Clock, notify: Callable[..., None]
    ) -> None:
        self.directory, self.j, self.clock, self.notify = directory, journal, clock, notify
        self.active: dict[str, Deployment] = {}
        self._seen: dict[Path, str] = {}

    def refresh(self, busy: set[str]) -> list[str]:
        """Apply directory changes; a deployment in ``busy`` (open orders) keeps its old version
        until it is idle. Returns the ids that changed."""
        current = scan(self.directory)
        with self.j.tx():  # one durable commit for the whole refresh
            changed = self._load(current, busy) + self._remove(current, busy)
        if changed:
            self.notify("deployments", f"loaded/changed/removed: {sorted(changed)[:20]}")
        return changed

    def _load(self, current: dict[Path, str], busy: set[str]) -> list[str]:
        changed = []
        for path, fingerprint in current.items():
            if self._seen.get(path) == fingerprint:
                continue
            try:
                dep = load_manifest(path)
            except ConfigError as exc:
                self.notify("manifest_invalid", str(exc), "error")
                self._seen[path] = fingerprint
                continue
            if dep.id in busy and dep.id in self.active:
                continue  # never mid-order: retried next cycle
            other = self.active.get(dep.id)
            if other is not None and other.path != path:
                self.notify(
                    "manifest_invalid",
                    f"{path.name}: deployment id {dep.id!r} is already used by {other.path.name}",
                    "error",
                )
                self._seen[path] = fingerprint
                continue
            self.active[dep.id] = dep
            self.j.upsert_deployment(
                dep.id, dep.manifest.model_dump(mode="json"), fingerprint, self.clock.now()
            )
            self._seen[path] = fingerprint
            changed.append(dep.id)
        return changed

    def _remove(self, current: dict[Path, str], busy: set[str]) -> list[str]:
        removed = []
        for dep in list(self.active.values()):
            if dep.path not in current and dep.id not in busy:
                del self.active[dep.id]
                self._seen.pop(dep.path, None)
                self.j.deactivate_deployment(dep.id)
                removed.append(dep.id)
        return removed

    def capital(self, dep_id: str) -> float:
        """Capital of a deployment (0 for unknown ones, e.g. adopted or external)."""
        dep = self.active.get(dep_id)
        return dep.manifest.capital if dep is not None else 0.0
