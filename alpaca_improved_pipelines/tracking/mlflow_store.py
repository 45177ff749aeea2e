"""MLflow tracking for research runs: one experiment per strategy family, a parent run per
sweep, child runs for the top variants, and a trial ledger across every sweep ever logged.

All access goes through ``MlflowClient`` on a SQLite store (``<home>/mlflow.db``), or on Postgres
(schema ``mlflow``) when ``ALPACA_IMPROVED_DATABASE_URL`` is set, with artifacts under
``<home>/mlartifacts``; nothing here touches the global ``mlflow`` fluent state, so runs from
concurrent processes never interleave.

With ``MLFLOW_TRACKING_URI=http(s)://…`` (a tracking server, as in ``deploy/``) the tracker talks
to that server instead, and artifacts go to the server's proxied artifact store
(``mlflow server --serve-artifacts --artifacts-destination s3://bucket/prefix``): experiments are
created without an artifact location, so the client needs no AWS credentials and writes no
local files.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alpaca_improved_pipelines.tracking import repro
from contracts import database, paths
from contracts.procs import pid_alive

EXPERIMENT_PREFIX = "alpaca-improved"
KIND_TAG = "alpaca_improved.kind"  # sweep | variant | backtest
TRIALS_METRIC = "n_trials"
SWEEP_KEY_TAG = "sweep.key"
SECRET_MARKERS = ("KEY", "SECRET", "TOKEN", "PASSWORD")


@dataclass(frozen=True)
class RunTags:
    """Where a run came from: Dagster run, asset, partitions, and the data it read."""

    dagster_run_id: str
    asset_key: str
    partition_range: str
    data_versions: Mapping[str, str] = field(default_factory=dict)

    def as_tags(self) -> dict[str, str]:
        tags = {
            "dagster.run_id": self.dagster_run_id,
            "dagster.asset_key": self.asset_key,
            "dagster.partition_range": self.partition_range,
            "git.sha": repro.git_sha(),
            "argv": repro.argv()[:4000],
            "data.version": repro.combined_version(dict(self.data_versions)),
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
        }
        for name, version in sorted(self.data_versions.items()):
            tags[f"data.version.{name}"] = version
        return tags


def _check_no_secrets(values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        secret_env = {
            k: v
            for k, v in os.environ.items()
            if any(m in k.upper() for m in SECRET_MARKERS) and len(v) >= 8
        }
        for env_key, env_value in secret_env.items():
            if env_value in str(value) or env_value in str(key):
                raise ValueError(f"refusing to log {key!r}: it contains the value of {env_key}")


# Columns of the MLflow SQLite store that hold artifact locations (absolute URIs by design).
ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)
ARTIFACTS_DIR = "/mlartifacts"


def _rerooted(value: str, artifacts: Path) -> str:
    """``value`` with its ``.../mlartifacts`` prefix replaced by ``artifacts`` (same form)."""
    cut = value.rfind(ARTIFACTS_DIR + "/")
    if cut < 0 and value.endswith(ARTIFACTS_DIR):
        cut = len(value) - len(ARTIFACTS_DIR)
    if cut < 0 or not value.startswith(("file:", "/")):
        return value
    root = artifacts.as_uri() if value.startswith("file:") else str(artifacts)
    return root + value[cut + len(ARTIFACTS_DIR) :]


def _stale_locations(con: sqlite3.Connection, artifacts: Path) -> list[tuple[str, str, str, str]]:
    """(table, column, stored, re-rooted) for every location outside ``artifacts``."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    out: list[tuple[str, str, str, str]] = []
    for table, column in ARTIFACT_COLUMNS:
        if table not in tables:
            continue
        if column not in {r[1] for r in con.execute(f"PRAGMA table_info({table})")}:
            continue
        rows = con.execute(
            f"SELECT DISTINCT {column} FROM {table} WHERE {column} LIKE ?",
            (f"%{ARTIFACTS_DIR}%",),
        ).fetchall()
        for (value,) in rows:
            new = _rerooted(str(value), artifacts)
            if new != value:
                out.append((table, column, str(value), new))
    return out


def reroot_artifacts(db: Path, artifacts: Path) -> int:
    """Point every artifact location in the store at ``artifacts`` (this data root's).

    MLflow stores absolute artifact URIs. A data root that was copied or moved would otherwise
    log into the original root's ``mlartifacts``; re-rooting on open keeps every path under the
    root it is opened from. Idempotent (a write lock is taken only when something is stale);
    returns the number of values changed.
    """
    if not db.exists():
        return 0
    con = sqlite3.connect(db, timeout=60)
    try:
        if not _stale_locations(con, artifacts):
            return 0
        con.execute("BEGIN IMMEDIATE")
        changed = 0
        for table, column, old, new in _stale_locations(con, artifacts):
            cur = con.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?", (new, old))
            changed += cur.rowcount
        con.commit()
        return changed
    finally:
        con.close()


def _forget_artifact_repos() -> None:
    """Drop MLflow's process-wide artifact-repository cache (keyed by run id alone).

    A copied root has the same run ids as its original; a repository cached for the original
    would otherwise keep writing there from this process.
    """
    try:
        from mlflow.tracking._tracking_service import utils
    except ImportError:  # pragma: no cover - a future MLflow without the cache
        return
    cache = getattr(utils, "_artifact_repos_cache", None)
    if cache is not None:
        cache.clear()


class Tracker:
    """A thin, process-safe layer over an MLflow SQLite tracking store."""

    def __init__(self, home: Path) -> None:
        from mlflow.tracking import MlflowClient

        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.artifacts = paths.mlflow_artifacts(home).resolve()
        server = os.environ.get("MLFLOW_TRACKING_URI", "")
        self.server = server.startswith(("http://", "https://"))
        if self.server:  # a tracking server: its store, its (proxied) artifact store
            self.uri = server
        else:
            self.uri = database.mlflow_tracking_uri(home)  # Postgres when configured, else SQLite
            if self.uri.startswith(database.DRIVER_SCHEME):
                from alpaca_improved_pipelines.database import configured_database

                configured_database()  # reachable, schema created (once per process)
            reroot_artifacts(paths.mlflow_db(home), self.artifacts)
        _forget_artifact_repos()
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def experiment_id(self, family: str) -> str:
        """The experiment of a strategy family (created on first use)."""
        name = f"{EXPERIMENT_PREFIX}/{family}"
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        # on a tracking server the server chooses (mlflow-artifacts:/, its proxied store)
        location = None if self.server else (self.artifacts / family).as_uri()
        return self.client.create_experiment(name, artifact_location=location)

    def mark_abandoned_runs_failed(self, family: str) -> int:
        """Runs left RUNNING by a killed process (its pid is gone) become FAILED; returns count."""
        exp = self.experiment_id(family)
        count = 0
        for run in self.client.search_runs(
            [exp], "attributes.status = 'RUNNING'", max_results=1000
        ):
            pid = run.data.tags.get("pid")
            same_host = run.data.tags.get("host") == socket.gethostname()
            if same_host and pid and pid_alive(int(pid)):
                continue
            self.client.set_tag(run.info.run_id, "alpaca_improved.abandoned", "true")
            self.client.set_terminated(run.info.run_id, status="FAILED")
            count += 1
        return count

    def trials_so_far(
        self, family: str, exclude_key: str | None = None, kind: str = "sweep"
    ) -> int:
        """The trial ledger: every variant ever evaluated for ``family`` across all searches
        (runs of ``kind``: ``sweep``, or ``ml_model`` for a model family's trainings).

        A search repeated on the same points and data (same ``sweep.key`` tag, e.g. a resumed
        one) counts once; ``exclude_key`` leaves out the search being run now.
        """
        exp = self.experiment_id(family)
        runs = self.client.search_runs([exp], f"tags.`{KIND_TAG}` = '{kind}'", max_results=50000)
        per_key: dict[str, float] = {}
        for r in runs:
            key = r.data.tags.get(SWEEP_KEY_TAG) or r.info.run_id
            if key != exclude_key:
                per_key[key] = max(per_key.get(key, 0.0), r.data.metrics.get(TRIALS_METRIC, 0.0))
        return int(sum(per_key.values()))

    def start_run(
        self,
        family: str,
        name: str,
        kind: str,
        tags: RunTags,
        parent_run_id: str | None = None,
        extra_tags: Mapping[str, str] | None = None,
    ) -> str:
        """A new RUNNING run with every reproducibility tag; returns its id."""
        all_tags = {**tags.as_tags(), KIND_TAG: kind, **dict(extra_tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        diff = repro.git_diff()
        if diff:  # a tag of the new run, not a write of its own
            all_tags["git.dirty"] = "true"
        run = self.client.create_run(self.experiment_id(family), run_name=name, tags=all_tags)
        if diff:
            self.log_text(run.info.run_id, diff, "code/uncommitted.diff")
        return run.info.run_id

    def log(
        self,
        run_id: str,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Params, metrics and tags in one batch (secret values are refused)."""
        from mlflow.entities import Metric, Param, RunTag

        params, metrics, tags = dict(params or {}), dict(metrics or {}), dict(tags or {})
        _check_no_secrets({**params, **tags})
        ts = 0
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items() if _finite(v)],
            params=[Param(k, str(v)[:6000]) for k, v in params.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.client.log_text(run_id, text, path)

    def log_file(self, run_id: str, local: Path, artifact_dir: str | None = None) -> None:
        self.client.log_artifact(run_id, str(local), artifact_dir)

    def log_frame(self, run_id: str, frame: Any, name: str) -> None:
        """A polars/pandas frame as a Parquet artifact."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            if hasattr(frame, "write_parquet"):
                frame.write_parquet(path)
            else:
                frame.to_parquet(path)
            self.client.log_artifact(run_id, str(path))

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def run_url(self, run_id: str) -> str:
        run = self.client.get_run(run_id)
        return f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run_id}"


def _finite(v: float) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return f == f and abs(f) != float("inf")
