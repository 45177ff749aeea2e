"""Event-log retention: Dagster's ``event_logs`` grows without bound and OSS cannot purge it.

Dagster 1.13 has no ``retention.event_logs`` setting (dagster#4100, PR #33863 open); its database
tuning guide prescribes a daily clean-up job. This is that job, for both storages the platform
runs on (SQLite shards per run, or one Postgres table): for every run that finished more than
``ALPACA_IMPROVED_EVENT_LOG_RETENTION_DAYS`` (default 30) days ago it deletes the bulky rows --
user log lines (``dagster_event_type`` NULL) and step/engine chatter (:data:`VERBOSE`) -- and
keeps what Dagster's UI and the platform read later: run lifecycle, asset materializations,
observations, planned materializations, check evaluations and failures. Asset history and
partition status are therefore unchanged; only the per-step detail of old runs goes.

The job ``prune_event_logs_job`` runs daily at 03:00 New York (``prune_event_logs_daily``, on by
default with the daemon) and can be launched from the Dagster UI;
:func:`prune_event_logs` has a ``dry_run`` that only counts.
"""

import datetime as dt
import os
from dataclasses import dataclass

import dagster as dg
import sqlalchemy as sa
from dagster._core.events import DagsterEventType
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable

RETENTION_VAR = "ALPACA_IMPROVED_EVENT_LOG_RETENTION_DAYS"
DEFAULT_DAYS = 30
VERBOSE = tuple(
    t.value
    for t in (
        DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_OUTPUT,
        DagsterEventType.STEP_INPUT, DagsterEventType.STEP_SKIPPED,
        DagsterEventType.STEP_WORKER_STARTING, DagsterEventType.STEP_WORKER_STARTED,
        DagsterEventType.STEP_UP_FOR_RETRY, DagsterEventType.STEP_RESTARTED,
        DagsterEventType.STEP_EXPECTATION_RESULT, DagsterEventType.RESOURCE_INIT_STARTED,
        DagsterEventType.RESOURCE_INIT_SUCCESS, DagsterEventType.LOADED_INPUT,
        DagsterEventType.HANDLED_OUTPUT, DagsterEventType.OBJECT_STORE_OPERATION,
        DagsterEventType.ASSET_STORE_OPERATION, DagsterEventType.LOGS_CAPTURED,
        DagsterEventType.ENGINE_EVENT, DagsterEventType.HOOK_COMPLETED,
        DagsterEventType.HOOK_SKIPPED,
    )
)  # fmt: skip
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


@dataclass(frozen=True)
class PruneReport:
    """What a prune did (or, dry, would do)."""

    cutoff: dt.datetime
    runs: int
    rows: int
    dry_run: bool


def retention_days(env: dict[str, str] | None = None) -> int:
    """Days of step detail to keep (``ALPACA_IMPROVED_EVENT_LOG_RETENTION_DAYS``).

    Raises:
        ValueError: not a whole number >= 0.
    """
    raw = (env if env is not None else os.environ).get(RETENTION_VAR, str(DEFAULT_DAYS))
    try:
        days = int(raw)
        if days < 0:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{RETENTION_VAR}={raw!r} is not a number of days; use a whole number >= 0"
        ) from None
    return days


def prune_event_logs(
    instance: dg.DagsterInstance, older_than_days: int, dry_run: bool = False
) -> PruneReport:
    """Delete the verbose event rows of runs finished more than ``older_than_days`` ago."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=older_than_days)
    storage = instance.event_log_storage
    table = SqlEventLogStorageTable
    bulky = sa.or_(table.c.dagster_event_type.is_(None), table.c.dagster_event_type.in_(VERBOSE))
    runs = rows = 0
    for record in instance.get_run_records(
        filters=dg.RunsFilter(statuses=FINISHED, updated_before=cutoff)
    ):
        run_id = record.dagster_run.run_id
        where = sa.and_(table.c.run_id == run_id, bulky)
        with storage.run_connection(run_id) as conn:  # type: ignore[attr-defined]
            if dry_run:
                found = conn.execute(sa.select(sa.func.count()).select_from(table).where(where))
                n = int(found.scalar() or 0)
            else:
                n = int(conn.execute(table.delete().where(where)).rowcount or 0)
        runs += 1 if n else 0
        rows += n
    return PruneReport(cutoff, runs, rows, dry_run)


@dg.op(description="Delete old runs' step detail and log lines; keep asset history.")
def prune_event_logs_op(context: dg.OpExecutionContext) -> None:
    report = prune_event_logs(context.instance, retention_days())
    context.log.info(
        f"pruned {report.rows} event rows of {report.runs} runs finished before "
        f"{report.cutoff:%Y-%m-%d %H:%M} UTC"
    )


@dg.job(description="Event-log retention (Dagster OSS cannot purge its event log).")
def prune_event_logs_job() -> None:
    prune_event_logs_op()


@dg.schedule(
    job=prune_event_logs_job,
    cron_schedule="0 3 * * *",
    execution_timezone="America/New_York",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def prune_event_logs_daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every night, after the nightly backfill finished."""
    return dg.RunRequest(run_key=f"prune:{context.scheduled_execution_time:%Y-%m-%d}")
