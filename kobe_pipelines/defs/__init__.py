"""The orchestration layer: assets, checks, resources, schedules and sensors, and one `Definitions`.

Loading it imports Dagster and this package's thin modules only: the data, model and trading
libraries (pandas, DuckDB, PyTorch, scikit-learn, MLflow, Great Expectations) load inside the
assets, schedules and sensors that use them.
"""

from __future__ import annotations

from typing import Mapping

import dagster as dg

from kobe_pipelines.defs.backtest.assets import backtest_assets
from kobe_pipelines.defs.lake.assets import IN_MEMORY, lake_assets
from kobe_pipelines.defs.lake.schedules import nightly_refreeze, refreeze_job, verify_lake_job, weekly_lake_verify
from kobe_pipelines.defs.models.assets import model_assets
from kobe_pipelines.defs.models.schedules import training_job, weekly_training
from kobe_pipelines.defs.process_exit import freeze_heap_at_exit
from kobe_pipelines.defs.resources import build_resources
from kobe_pipelines.defs.trading.assets import trading_assets
from kobe_pipelines.defs.trading.sensors import (
    alerts_flush_sensor, drawdown_sensor, run_failure_alert_sensor, trading_job, trading_sensor,
)

freeze_heap_at_exit()

ALL_ASSETS = [*lake_assets, *model_assets, *trading_assets, *backtest_assets]
JOBS = [refreeze_job, training_job, trading_job, verify_lake_job]


def with_provider_kind(assets: list, provider: str) -> list:
    """`raw_daily_bars` shows the provider it reads (simulated, polygon or files) as a kind."""
    def kinds(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key != dg.AssetKey("raw_daily_bars"):
            return spec
        return spec.replace_attributes(kinds={*spec.kinds, provider})

    return dg.map_asset_specs(kinds, assets)


def build_definitions(environ: Mapping[str, str] | None = None) -> dg.Definitions:
    resources = build_resources(environ)
    provider = _provider_name(environ)
    return dg.Definitions(
        assets=with_provider_kind(ALL_ASSETS, provider),
        jobs=JOBS,
        schedules=[nightly_refreeze, weekly_training, weekly_lake_verify],
        sensors=[trading_sensor, drawdown_sensor, run_failure_alert_sensor, alerts_flush_sensor],
        resources={**resources, IN_MEMORY: dg.mem_io_manager},
        # one process per run: a step costs no start-up, and the lake candidate and the features
        # pass from step to step in memory (trading_job and the UI's own asset runs too)
        executor=dg.in_process_executor,
    )


def _provider_name(environ: Mapping[str, str] | None) -> str:
    from kobe_pipelines.settings import MarketDataSettings

    return MarketDataSettings.from_env(environ).provider
