"""Nightly after-close schedule: the day's session for the whole universe."""

import datetime as dt

import dagster as dg

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.defs.market_data.jobs import market_data_job

# 18:30 New York: after the 16:00 close (13:00 on early closes) and vendors' end-of-day settlement.
NIGHTLY_CRON = "30 18 * * 1-5"


def session_for_tick(scheduled: dt.datetime) -> dt.date | None:
    """The session a tick at ``scheduled`` should load, or None on a non-session day."""
    day = cal.new_york_date(scheduled)
    return day if cal.is_session(day) else None


def session_request(
    context: dg.ScheduleEvaluationContext, run_key_prefix: str
) -> dg.RunRequest | dg.SkipReason:
    """The run request of a nightly tick: that evening's session, or a skip on holidays."""
    scheduled = context.scheduled_execution_time
    if scheduled is None:
        return dg.SkipReason("no scheduled time on this evaluation")
    session = session_for_tick(scheduled)
    if session is None:
        return dg.SkipReason(f"{cal.new_york_date(scheduled).isoformat()} is not an NYSE session")
    key = session.isoformat()
    return dg.RunRequest(run_key=f"{run_key_prefix}:{key}", partition_key=key)


@dg.schedule(
    job=market_data_job,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone="America/New_York",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_market_data(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """After the close, materialize today's session for all symbols; skip holidays."""
    return session_request(context, "nightly")
