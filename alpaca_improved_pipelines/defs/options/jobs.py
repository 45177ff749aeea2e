"""The options job and its nightly schedule (after the market-data run)."""

import dagster as dg

from alpaca_improved_pipelines.defs.market_data.schedules import session_request

# 18:45 New York: after the 18:30 market-data run; chains are end-of-day snapshots.
NIGHTLY_CRON = "45 18 * * 1-5"

options_job = dg.define_asset_job(
    "options_job",
    selection=dg.AssetSelection.groups("options"),
    description="Option chains with our IV and Greeks, their quality gates, then the fitted "
    "volatility surface, for the selected sessions.",
)


@dg.schedule(
    job=options_job,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone="America/New_York",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_options(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """After the close, snapshot today's option chains and fit the surface; skip holidays."""
    return session_request(context, "options")
