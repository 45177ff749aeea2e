"""Event-log retention on both storages (issue #13 item 6): old runs lose their step detail and
log lines, and keep everything asset history needs (materializations, partition status, run
outcome). A run newer than the retention keeps every row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from alpaca_improved_pipelines.defs.monitoring.retention import (
    prune_event_logs,
    prune_event_logs_job,
    retention_days,
)
from alpaca_improved_pipelines.runner import dagster_instance
from alpaca_improved_pipelines.settings import load_settings
from contracts.database import DATABASE_ENV, PASSWORD_ENV

PARTS = dg.StaticPartitionsDefinition(["2024-01-02", "2024-01-03", "2024-01-04"])


@dg.asset(partitions_def=PARTS)
def bars(context) -> int:  # noqa: ANN001 - dagster resolves the annotation at import
    for k in range(20):
        context.log.info(f"chatty line {k}")
    return 1


def event_types(instance: dg.DagsterInstance, run_id: str) -> list[str | None]:
    return [
        r.event_log_entry.dagster_event.event_type_value
        if r.event_log_entry.dagster_event
        else None
        for r in instance.get_records_for_run(run_id).records
    ]


def exercise(instance: dg.DagsterInstance) -> None:
    runs = []
    for key in PARTS.get_partition_keys():
        result = dg.materialize([bars], instance=instance, partition_key=key)
        assert result.success
        runs.append(result.run_id)
    before = {r: event_types(instance, r) for r in runs}
    assert all(None in types and "STEP_START" in types for types in before.values())

    assert prune_event_logs(instance, older_than_days=1).rows == 0  # all runs are recent
    assert {r: event_types(instance, r) for r in runs} == before

    dry = prune_event_logs(instance, older_than_days=0, dry_run=True)
    assert dry.runs == 3 and dry.rows > 3 * 20  # 20 log lines per run, and the step chatter
    assert {r: event_types(instance, r) for r in runs} == before
    done = prune_event_logs(instance, older_than_days=0)
    assert (done.runs, done.rows) == (dry.runs, dry.rows)
    for run_id in runs:
        kept = event_types(instance, run_id)
        assert None not in kept and "STEP_START" not in kept and "LOGS_CAPTURED" not in kept
        assert "ASSET_MATERIALIZATION" in kept and "PIPELINE_SUCCESS" in kept
    assert instance.get_materialized_partitions(bars.key) == set(PARTS.get_partition_keys())
    assert instance.get_latest_materialization_event(bars.key) is not None
    assert prune_event_logs(instance, older_than_days=0).rows == 0  # idempotent


def test_retention_on_the_embedded_sqlite_instance(tmp_path: Path) -> None:
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        exercise(instance)


@pytest.fixture
def pg_instance(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    monkeypatch.setenv("ALPACA_IMPROVED_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(DATABASE_ENV, postgres_url)
    for key in (PASSWORD_ENV, "DAGSTER_HOME"):
        monkeypatch.delenv(key, raising=False)
    with dagster_instance(load_settings()) as instance:
        yield instance


def test_retention_on_postgres(pg_instance: dg.DagsterInstance) -> None:
    assert type(pg_instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    exercise(pg_instance)


def test_the_job_runs_and_a_bad_retention_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPACA_IMPROVED_EVENT_LOG_RETENTION_DAYS", "0")
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        dg.materialize([bars], instance=instance, partition_key="2024-01-02")
        assert prune_event_logs_job.execute_in_process(instance=instance).success
        first = instance.get_runs(filters=dg.RunsFilter(job_name="__ephemeral_asset_job__"))[0]
        assert None not in event_types(instance, first.run_id)
    with pytest.raises(ValueError, match="RETENTION_DAYS='-3' is not a number of days"):
        retention_days({"ALPACA_IMPROVED_EVENT_LOG_RETENTION_DAYS": "-3"})
