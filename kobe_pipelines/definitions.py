"""Entry point for `dagster dev -w workspace.yaml` and `dagster definitions validate`."""

from kobe_pipelines.defs import build_definitions

defs = build_definitions()
