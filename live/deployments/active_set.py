"""The runner's set of active deployments, refreshed from the manifest directory between cycles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from live.clock import Clock
from live.deployments.manifests import Deployment, load_manifest, scan
from live.errors import ConfigError
from live.journal.store import Journal


def strategy_symbols(dep: Deployment) -> tuple[str, ...]:
    """The symbols a deployment's strategy reads bars of (``symbols`` or ``underlying``)."""
    config = dep.strategy.config
    symbols = getattr(config, "symbols", None)
    if symbols is None:
        underlying = getattr(config, "underlying", None)
        symbols = (underlying,) if underlying else ()
    return tuple(str(s) for s in symbols)


class DeploymentSet:
    """Loads new/changed manifests (deferring busy deployments) and drops removed ones.

    ``lake_symbols`` returns the symbols the market data has (None: unknown); a manifest naming
    another symbol is refused at load time, naming it, and retried when the data changes.
    """

    def __init__(
        self, directory: Path, journal: Journal, clock: Clock, notify: Callable[..., None],
        lake_symbols: Callable[[], frozenset[str] | None] | None = None,
    ) -> None:  # fmt: skip
        self.directory, self.j, self.clock, self.notify = directory, journal, clock, notify
        self.lake_symbols = lake_symbols or (lambda: None)
        self.active: dict[str, Deployment] = {}
        self._seen: dict[Path, str] = {}
        self._lacking: set[Path] = set()  # refused for a symbol the data lacks
        self._symbols: frozenset[str] | None = None

    def refresh(self, busy: set[str]) -> list[str]:
        """Apply directory changes; a deployment in ``busy`` (open orders) keeps its old version
        until it is idle. Returns the ids that changed."""
        current = scan(self.directory)
        symbols = self.lake_symbols()
        if symbols != self._symbols:  # new data: look again at manifests it could not serve
            self._symbols = symbols
            for path in self._lacking:
                self._seen.pop(path, None)
            self._lacking.clear()
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
            lacking = self._lacking_symbols(dep)
            if lacking:
                self.notify("manifest_invalid", f"{path.name}: {lacking}", "error")
                self._seen[path] = fingerprint
                self._lacking.add(path)
                continue
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

    def _lacking_symbols(self, dep: Deployment) -> str:
        """Why ``dep`` cannot trade on the data ("" when it can, or when the data is unknown)."""
        if self._symbols is None:
            return ""
        missing = [s for s in strategy_symbols(dep) if s not in self._symbols]
        if not missing:
            return ""
        have = ", ".join(sorted(self._symbols)[:20])
        names = ", ".join(repr(s) for s in missing)
        verb = "are" if len(missing) > 1 else "is"
        return (
            f"symbol {names} {verb} not in the lake (stock_bars_1d has {have}); add it to "
            "ALPACA_IMPROVED_SYMBOLS and backfill, or remove it from the manifest's params"
        )

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
