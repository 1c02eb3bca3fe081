"""Retraining: weekly, Saturday morning New York time (promotion still needs a better score)."""

import dagster as dg

from kobe_pipelines import market_calendar

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets("features", "lstm_model", "tree_model", "linear_model", "ensemble_model", "signals"),
    description="Features of the current lake version, the three models and the ensemble, then fresh signals.",
)

weekly_training = dg.ScheduleDefinition(
    name="weekly_training", job=training_job, cron_schedule="0 6 * * 6", execution_timezone=market_calendar.EXCHANGE_TZ,
)
