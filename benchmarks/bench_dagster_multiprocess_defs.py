"""The nightly refreeze with Dagster's multiprocess executor, for bench_dagster.py's comparison only:
each step a process of its own that loads the definitions, and the lake candidate handed from step
to step through files instead of memory."""

import dagster as dg

from kobe_pipelines.defs import ALL_ASSETS
from kobe_pipelines.defs.lake.assets import IN_MEMORY
from kobe_pipelines.defs.resources import build_resources

refreeze_job_multiprocess = dg.define_asset_job(
    "refreeze_job_multiprocess",
    selection=dg.AssetSelection.groups("lake") | dg.AssetSelection.assets("signals"),
    executor_def=dg.multiprocess_executor,
)

defs = dg.Definitions(assets=ALL_ASSETS, jobs=[refreeze_job_multiprocess],
                      resources={**build_resources(), IN_MEMORY: dg.fs_io_manager})
