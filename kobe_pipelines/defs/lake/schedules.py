"""The nightly refreeze (weekdays after the close) and the weekly full verification of the lake
(Sundays before dawn), America/New_York."""

import dagster as dg

from kobe_pipelines.alerts import Alert, Severity
from kobe_pipelines.defs.env_resources import AlertsResource
from kobe_pipelines.defs.lake.assets import last_session_held, sessions_run_config
from kobe_pipelines.defs.lake.sessions import sessions_to_ingest
from kobe_pipelines.defs.resources import LakeResource, MarketDataResource

EXCHANGE_TZ = "America/New_York"  # market_calendar.EXCHANGE_TZ, without importing the calendar here

refreeze_job = dg.define_asset_job(
    "refreeze_job",
    selection=dg.AssetSelection.groups("lake") | dg.AssetSelection.assets("signals"),
    executor_def=dg.in_process_executor,
    tags={"kobe/job": "refreeze"},
    description="Ingest sessions' raw bars and the latest corporate actions, publish a lake version, and score it "
    "with the production ensemble (new signals start the trading sensor). Without config it ingests every "
    "session the lake lacks; the nightly schedule asks for one.",
)

CATCH_UP_FIRST = (
    "the lake holds no version yet, so the nightly refreeze has nothing to add a session to: catch up the "
    "history first, with `kobe lake freeze --provider {provider}` or by launching refreeze_job without config "
    "(Dagster UI: Jobs > refreeze_job > Launchpad), then the schedule adds one session a night"
)


@dg.schedule(job=refreeze_job, cron_schedule="30 18 * * 1-5", execution_timezone=EXCHANGE_TZ)
def nightly_refreeze(context: dg.ScheduleEvaluationContext, lake: LakeResource, market_data: MarketDataResource):
    """18:30 New York time on weekdays: ingest that evening's session (and any session a missed
    night left out). On an empty lake it skips, naming the command that catches up the history."""
    from kobe_pipelines import market_calendar

    day = context.scheduled_execution_time.date()
    if not market_calendar.is_session(day):
        return dg.SkipReason(f"{day} is not an XNYS session")
    held = last_session_held(lake.open())
    if held is None:
        return dg.SkipReason(CATCH_UP_FIRST.format(provider=market_data.settings().provider))
    if held >= day:
        return dg.SkipReason(f"the lake already holds {day}")
    span = sessions_to_ingest(held, market_data.settings().history_start, last=str(day))
    return dg.RunRequest(
        run_key=f"refreeze-{day}",
        run_config=sessions_run_config(span),
        tags={"kobe/sessions": str(span), "kobe/trigger": "nightly_refreeze"},
    )



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


@dg.job(description="The weekly full verification of the data lake (every file of every retained version).",
        tags={"kobe/job": "verify_lake"})
def verify_lake_job():
    verify_lake_files()


@dg.schedule(job=verify_lake_job, cron_schedule="0 5 * * 0", execution_timezone=EXCHANGE_TZ)
def weekly_lake_verify(context: dg.ScheduleEvaluationContext):
    """05:00 New York time on Sundays, when no refreeze runs."""
    return dg.RunRequest(run_key=f"verify-lake-{context.scheduled_execution_time.date()}")
