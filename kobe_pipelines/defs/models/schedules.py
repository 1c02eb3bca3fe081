"""Retraining: weekly, Saturday morning New York time (promotion still needs a better score)."""

import dagster as dg

from kobe_pipelines.defs.lake.schedules import EXCHANGE_TZ

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets("features", "lstm_model", "tree_model", "linear_model", "ensemble_model", "signals"),
    executor_def=dg.in_process_executor,
    tags={"kobe/job": "training"},
    description="Features of the current lake version, the three models and the ensemble, then fresh signals.",
)

weekly_training = dg.ScheduleDefinition(
    name="weekly_training", job=training_job, cron_schedule="0 6 * * 6", execution_timezone=EXCHANGE_TZ,
)
