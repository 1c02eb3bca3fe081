"""The nightly refreeze: weekdays after the close, America/New_York."""


import dagster as dg

from kobe_pipelines import market_calendar
from kobe_pipelines.defs.partitions import xnys_daily_partitions

refreeze_job = dg.define_asset_job(
    "refreeze_job",
    selection=dg.AssetSelection.groups("lake") | dg.AssetSelection.assets("signals"),
    partitions_def=xnys_daily_partitions,
    description="Ingest one session's raw bars and the latest corporate actions, publish a lake version, "
    "and score it with the production ensemble (new signals start the trading sensor).",
)


@dg.schedule(job=refreeze_job, cron_schedule="30 18 * * 1-5", execution_timezone=market_calendar.EXCHANGE_TZ)
def nightly_refreeze(context: dg.ScheduleEvaluationContext):
    """18:30 New York time on weekdays: ingest that day's session, if it was one."""
    day = context.scheduled_execution_time.date()
    if not market_calendar.is_session(day):
        return dg.SkipReason(f"{day} is not an XNYS session")
    return dg.RunRequest(run_key=f"refreeze-{day}", partition_key=str(day))
