"""Drives the loop the way the schedule and the sensors do, in this process.

Used by `kobe demo`, `kobe verify --phase 5` and the end-to-end tests: materialize the lake over a
partition range (the nightly refreeze), train and register the models, tick the trading sensor
and run the trading job it requests with the sensor's run key.
"""

from __future__ import annotations

import dagster as dg

from kobe_pipelines.defs.lake.assets import lake_assets
from kobe_pipelines.defs.models.assets import model_assets
from kobe_pipelines.defs.trading.assets import trading_assets
from kobe_pipelines.defs.trading.sensors import trading_job, trading_sensor

ALL_ASSETS = [*lake_assets, *model_assets, *trading_assets]
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
MODEL_ASSETS = ("features", "lstm_model", "tree_model", "linear_model", "ensemble_model", "signals")


def training_config(max_epochs: int, n_folds: int) -> dict:
    return {"ops": {"trained_models": {"config": {"max_epochs": max_epochs, "n_folds": n_folds}}}}


class LoopDriver:
    def __init__(self, resources: dict, instance: dg.DagsterInstance):
        self.resources = resources
        self.instance = instance
        self.definitions = dg.Definitions(assets=ALL_ASSETS, jobs=[trading_job], sensors=[trading_sensor], resources=resources)

    def materialize(self, selection: dg.AssetSelection, tags: dict | None = None, run_config: dict | None = None):
        return dg.materialize(ALL_ASSETS, selection=selection, resources=self.resources, instance=self.instance,
                              tags=tags or {}, run_config={**QUIET, **(run_config or {})})

    def freeze(self, first: str, last: str, with_signals: bool = True):
        """The lake assets over the sessions first..last (and fresh signals, as the nightly job does)."""
        selection = dg.AssetSelection.groups("lake")
        if with_signals:
            selection = selection | dg.AssetSelection.assets("signals")
        return self.materialize(selection, {"dagster/asset_partition_range_start": first,
                                            "dagster/asset_partition_range_end": last})

    def train(self, run_config: dict | None = None):
        return self.materialize(dg.AssetSelection.assets(*MODEL_ASSETS), run_config=run_config)

    def tick(self) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(instance=self.instance, definitions=self.definitions)
        return list(trading_sensor.evaluate_tick(context).run_requests or [])

    def already_ran(self, request: dg.RunRequest) -> bool:
        """What the sensor daemon checks before launching: a run key is launched once."""
        return bool(self.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key})))

    def trade(self, request: dg.RunRequest):
        job = self.definitions.resolve_job_def("trading_job")
        return job.execute_in_process(instance=self.instance, run_config=QUIET,
                                      tags={**request.tags, "dagster/run_key": request.run_key})

    def tick_and_trade(self) -> tuple[dg.RunRequest | None, object | None]:
        """One sensor tick; runs the requested trading run unless its run key already ran."""
        requests = self.tick()
        if not requests:
            return None, None
        request = requests[0]
        if self.already_ran(request):
            return request, None
        return request, self.trade(request)
