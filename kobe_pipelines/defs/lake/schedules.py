"""The nightly refreeze: weekdays after the close, America/New_York."""

from __future__ import annotations

import dagster as dg

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

