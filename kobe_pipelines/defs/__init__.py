"""The orchestration layer: assets, checks, resources, schedules and sensors, and one `Definitions`."""

from __future__ import annotations

from typing import Mapping

import dagster as dg

from kobe_pipelines.defs.lake.assets import lake_assets
from kobe_pipelines.defs.lake.schedules import nightly_refreeze, refreeze_job
from kobe_pipelines.defs.resources import build_resources


def build_definitions(environ: Mapping[str, str] | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[*lake_assets],
        jobs=[refreeze_job],
        schedules=[nightly_refreeze],
        resources=build_resources(environ),
    )
