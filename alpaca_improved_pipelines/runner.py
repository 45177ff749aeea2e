"""Run jobs through a persistent Dagster instance from the terminal (demo, backfill CLI)."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.settings import Settings

DAGSTER_YAML = """\
# Written by alpaca-improved: SQLite storage under the data root; switch to Postgres to scale out.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 2
"""


@contextmanager
def dagster_instance(settings: Settings) -> Iterator[dg.DagsterInstance]:
    """The persistent instance under ``<home>/dagster_home`` (created on first use)."""
    home = settings.dagster_home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
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
) -> list[BatchResult]:
    """Materialize ``job_name`` for every session in [start, end], one run per batch.

    Each batch is a single run over a partition range (the single-run backfill shape), so the
    per-partition cost is a loop iteration, not a process. Stops at the first failed batch.
    """
    job = defs.resolve_job_def(job_name)
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
