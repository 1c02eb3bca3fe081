"""The orchestration layer: assets, checks, resources, schedules and sensors, and one `Definitions`."""

from __future__ import annotations

from typing import Mapping

import dagster as dg

from kobe_pipelines.defs.backtest.assets import backtest_assets
from kobe_pipelines.defs.lake.assets import lake_assets
from kobe_pipelines.defs.lake.schedules import nightly_refreeze, refreeze_job, verify_lake_job, weekly_lake_verify
from kobe_pipelines.defs.models.assets import model_assets
from kobe_pipelines.defs.models.schedules import training_job, weekly_training
from kobe_pipelines.defs.resources import build_resources
from kobe_pipelines.defs.trading.assets import trading_assets
from kobe_pipelines.defs.trading.sensors import (
    alerts_flush_sensor, drawdown_sensor, run_failure_alert_sensor, trading_job, trading_sensor,
)


def build_definitions(environ: Mapping[str, str] | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[*lake_assets, *model_assets, *trading_assets, *backtest_assets],
        jobs=[refreeze_job, training_job, trading_job, verify_lake_job],
        schedules=[nightly_refreeze, weekly_training, weekly_lake_verify],
        sensors=[trading_sensor, drawdown_sensor, run_failure_alert_sensor, alerts_flush_sensor],
        resources=build_resources(environ),
    )
