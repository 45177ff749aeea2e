"""Run jobs through a persistent Dagster instance from the terminal (demo, backfill CLI)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.database import configured_database, storage_yaml
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.settings import Settings
from contracts.database import DATABASE_ENV, DatabaseUrl
from contracts.procs import pid_alive

OURS = "# Written by alpaca-improved"
DAGSTER_YAML = f"""\
{OURS}: SQLite storage under the data root; switch to Postgres to scale out.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 2
# The daemon (alpaca-improved ui / dagster dev) fails runs stuck starting or canceling; runs
# whose process was killed outright are failed by the next alpaca-improved command
# (runner.fail_orphaned_runs), since the default run launcher cannot probe a worker's health.
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  poll_interval_seconds: 60
"""
PID_TAG = "alpaca_improved/pid"
HOST_TAG = "alpaca_improved/host"


def process_tags() -> dict[str, str]:
    """Tags naming the process that executes a run in-process (to find it orphaned later)."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _run_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    """The pid executing ``run`` on this host: our tag, else Dagster's engine event; or None."""
    tags = run.tags
    if PID_TAG in tags:
        if tags.get(HOST_TAG) != socket.gethostname():
            return None  # another machine's run: not ours to judge
        return int(tags[PID_TAG])
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        meta = event.engine_event_data.metadata if event and event.engine_event_data else {}
        pid: Any = meta.get("pid")
        if pid is not None:
            return int(getattr(pid, "value", pid))
    return None


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Runs left STARTED/STARTING by a process that no longer exists become FAILURE.

    A backfill killed with SIGKILL cannot report its own end; without this its run shows as
    in progress forever. Returns the ids of the runs marked failed.
    """
    in_progress = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]
    failed: list[str] = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=in_progress)):
        pid = _run_pid(instance, run)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        instance.report_run_failed(
            run,
            f"the process executing this run (pid {pid}) ended without finishing it (killed or "
            "crashed); marked failed by the next alpaca-improved command. Rerun the same range: "
            "partitions are written atomically, so none is half-written.",
        )
        failed.append(run.run_id)
    return failed


def dagster_yaml(db: DatabaseUrl | None) -> str:
    """Our dagster.yaml: SQLite under the data root, or Postgres storage for ``db``."""
    if db is None:
        return DAGSTER_YAML
    _, _, rest = DAGSTER_YAML.partition("\n")
    return f"{OURS}: Postgres storage from {DATABASE_ENV}.\n{rest}{storage_yaml(db)}"


def _write_dagster_yaml(cfg: Path, content: str = DAGSTER_YAML) -> None:
    """Write our dagster.yaml when absent, or upgrade one we wrote earlier (never a user's)."""
    if cfg.exists():
        text = cfg.read_text()
        if text == content or not text.startswith(OURS):
            return
    tmp = cfg.with_name(f".dagster.yaml.tmp-{os.getpid()}")
    tmp.write_text(content)
    os.replace(tmp, cfg)


@contextmanager
def dagster_instance(settings: Settings) -> Iterator[dg.DagsterInstance]:
    """The persistent instance under ``<home>/dagster_home`` (created on first use).

    Its storage is Postgres when ``ALPACA_IMPROVED_DATABASE_URL`` is set (checked here, before
    anything is written or run), else SQLite. Runs orphaned by a killed process are marked
    failed on the way in.
    """
    db = configured_database()
    home = settings.dagster_home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    _write_dagster_yaml(home / "dagster.yaml", dagster_yaml(db))
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        if db is not None:  # pooled connections, not a new login (SCRAM) per event written
            instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=4)
        fail_orphaned_runs(instance)
        yield instance


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One run of a batched backfill."""

    run_id: str
    first: dt.date
    last: dt.date
    success: bool


def session_batches(start: dt.date, end: dt.date, size: int) -> list[list[dt.date]]:
    """Sessions in [start, end] cut into runs of at most ``size`` sessions."""
    if size < 1:
        raise ConfigError(f"batch size {size} must be at least 1")
    sessions = cal.sessions_between(start, end)
    if not sessions:
        raise ConfigError(
            f"no NYSE session between {start.isoformat()} and {end.isoformat()}; widen the range"
        )
    return [sessions[i : i + size] for i in range(0, len(sessions), size)]


def run_range(
    defs: dg.Definitions,
    job_name: str,
    instance: dg.DagsterInstance,
    start: dt.date,
    end: dt.date,
    batch_size: int = 60,
    run_config: dict | None = None,
    on_batch: Callable[[BatchResult, int], None] | None = None,
    extra_tags: dict[str, str] | None = None,
    job_def: dg.JobDefinition | None = None,
) -> list[BatchResult]:
    """Materialize ``job_name`` for every session in [start, end], one run per batch.

    Each batch is a single run over a partition range (the single-run backfill shape), so the
    per-partition cost is a loop iteration, not a process. Stops at the first failed batch.
    """
    job = job_def or defs.resolve_job_def(job_name)
    run_config = {
        **(run_config or {}),
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    backfill_id = uuid.uuid4().hex[:8]
    results: list[BatchResult] = []
    for batch in session_batches(start, end, batch_size):
        tags = {
            "dagster/asset_partition_range_start": batch[0].isoformat(),
            "dagster/asset_partition_range_end": batch[-1].isoformat(),
            "alpaca_improved/backfill": backfill_id,
            **process_tags(),
            **(extra_tags or {}),
        }
        res = job.execute_in_process(
            instance=instance, tags=tags, run_config=run_config, raise_on_error=False
        )
        out = BatchResult(res.run_id, batch[0], batch[-1], res.success)
        results.append(out)
        if on_batch:
            on_batch(out, len(batch))
        if not res.success:
            break
    return results


def check_range_in_partitions(start: dt.date, settings: Settings) -> None:
    """Refuse ranges that begin before the partition set does (they would not show in the UI)."""
    if start < settings.start:
        raise ConfigError(
            f"start {start.isoformat()} is before the first partition "
            f"{settings.start.isoformat()}; "
            f"set ALPACA_IMPROVED_START={start.isoformat()} (or earlier) and rerun"
        )
