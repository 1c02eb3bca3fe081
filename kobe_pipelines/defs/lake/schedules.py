"""The nightly refreeze (weekdays after the close) and the weekly full verification of the lake
(Sundays before dawn), America/New_York."""


import dagster as dg

from kobe_pipelines import market_calendar
from kobe_pipelines.alerts import Alert, Severity
from kobe_pipelines.defs.env_resources import AlertsResource
from kobe_pipelines.defs.partitions import xnys_daily_partitions
from kobe_pipelines.defs.resources import LakeResource

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


LAKE_CORRUPTION_ALERT = "lake_corruption"


@dg.op(description="Re-hash every file of every retained lake version and check the catalog; alert and fail on a mismatch.")
def verify_lake_files(context: dg.OpExecutionContext, lake: LakeResource, alerts: AlertsResource) -> int:
    """The whole `kobe lake verify --all`: a freeze re-hashes only files whose stat changed, and
    Parquet page checksums catch a flipped byte only where a page is read; this catches
    everything else (a disk's silent corruption, a file changed behind the lake's back)."""
    found = lake.open().verify_all()
    problems = [f"{version}: {problem}" for version, listed in found.items() for problem in listed]
    if problems:
        alerter = alerts.alerter()
        alerter.send(Alert(kind=LAKE_CORRUPTION_ALERT, severity=Severity.CRITICAL, key=LAKE_CORRUPTION_ALERT,
                           subject=f"lake verification failed: {len(problems)} problem(s) in {len(found)} version(s)",
                           body="\n".join(problems)))
        alerter.flush()
        raise dg.Failure(description=f"{len(problems)} lake problem(s); first: {problems[0]}",
                         metadata={"problems": dg.MetadataValue.json(problems[:100])})
    context.log.info(f"lake verified: {len(found)} version(s), every file matches its sha256")
    return len(found)


@dg.job(description="The weekly full verification of the data lake (every file of every retained version).")
def verify_lake_job():
    verify_lake_files()


@dg.schedule(job=verify_lake_job, cron_schedule="0 5 * * 0", execution_timezone=market_calendar.EXCHANGE_TZ)
def weekly_lake_verify(context: dg.ScheduleEvaluationContext):
    """05:00 New York time on Sundays, when no refreeze runs."""
    return dg.RunRequest(run_key=f"verify-lake-{context.scheduled_execution_time.date()}")
