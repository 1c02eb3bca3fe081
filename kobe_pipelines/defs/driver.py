"""Drives the loop the way the schedule and the sensors do, in this process.

Used by `kobe demo`, `kobe verify --phase 5` and the end-to-end tests: a refreeze of a range of
sessions (the nightly job), training, a tick of the trading sensor and the trading run it requests
with the sensor's run key. Every run executes its own job (`refreeze_job`, `training_job`,
`trading_job`), so the UI lists it under that name with its tags.
"""

from __future__ import annotations

import uuid
from typing import Callable

import dagster as dg

from kobe_pipelines.defs import ALL_ASSETS, JOBS
from kobe_pipelines.defs.lake.assets import IN_MEMORY, sessions_run_config
from kobe_pipelines.defs.lake.sessions import SessionRange
from kobe_pipelines.defs.trading.sensors import trading_sensor

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
LAKE_ASSETS = ("raw_daily_bars", "corporate_actions", "lake_candidate", "lake_version")
MODEL_ASSETS = ("features", "lstm_model", "tree_model", "linear_model", "ensemble_model", "signals")
EventListener = Callable[[dg.EventLogEntry], None]


def training_config(max_epochs: int, n_folds: int) -> dict:
    return {"ops": {"trained_models": {"config": {"max_epochs": max_epochs, "n_folds": n_folds}}}}


class LoopDriver:
    """Runs the jobs on `instance` with `resources`. `listener`, when given, sees every event of
    every run as it is stored (the demo's progress bar)."""

    def __init__(self, resources: dict, instance: dg.DagsterInstance, listener: EventListener | None = None):
        self.resources = {**resources, IN_MEMORY: dg.mem_io_manager}
        self.instance = instance
        self.listener = listener
        self.definitions = dg.Definitions(assets=ALL_ASSETS, jobs=JOBS, sensors=[trading_sensor], resources=self.resources,
                                          executor=dg.in_process_executor)

    def run(self, job_name: str, *, run_config: dict | None = None, tags: dict | None = None,
            assets: tuple[str, ...] | None = None, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        job = self.definitions.resolve_job_def(job_name)
        run_id = str(uuid.uuid4())
        if self.listener is not None:
            self.instance.add_event_listener(run_id, self.listener)
        selection = [dg.AssetKey(name) for name in assets] if assets else None
        return job.execute_in_process(instance=self.instance, run_config={**QUIET, **(run_config or {})},
                                      tags=tags or {}, run_id=run_id, asset_selection=selection, raise_on_error=raise_on_error)

    def freeze(self, first: str, last: str, with_signals: bool = True, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        """`refreeze_job` over the sessions first..last (with fresh signals, as the nightly run)."""
        import datetime as dt

        span = SessionRange(dt.date.fromisoformat(first), dt.date.fromisoformat(last))
        assets = LAKE_ASSETS + (("signals",) if with_signals else ())
        return self.run("refreeze_job", run_config=sessions_run_config(span), tags={"kobe/sessions": str(span)}, assets=assets,
                        raise_on_error=raise_on_error)

    def train(self, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
        return self.run("training_job", run_config=run_config)

    def tick(self) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(instance=self.instance, definitions=self.definitions)
        return list(trading_sensor.evaluate_tick(context).run_requests or [])

    def already_ran(self, request: dg.RunRequest) -> bool:
        """What the sensor daemon checks before launching: a run key is launched once."""
        return bool(self.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key})))

    def trade(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        return self.run("trading_job", tags={**request.tags, "dagster/run_key": request.run_key})

    def tick_and_trade(self) -> tuple[dg.RunRequest | None, dg.ExecuteInProcessResult | None]:
        """One sensor tick; runs the requested trading run unless its run key already ran."""
        requests = self.tick()
        if not requests:
            return None, None
        request = requests[0]
        if self.already_ran(request):
            return request, None
        return request, self.trade(request)
