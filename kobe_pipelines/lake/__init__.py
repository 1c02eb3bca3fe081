"""The versioned data lake (no Dagster import). Start with `Lake`."""

from kobe_pipelines.lake.errors import (
    LakeCorruptionError, LakeError, LakeVersionNotFound, LakeWriteError, QueryRefused, RawRestatementError,
)
from kobe_pipelines.lake.freeze_steps import ActionsSetAside
from kobe_pipelines.lake.manifest import FileEntry, Manifest
from kobe_pipelines.lake.store import Candidate, FreezeResult, Lake, LakeVersion

__all__ = [
    "ActionsSetAside", "Candidate", "FileEntry", "FreezeResult", "Lake", "LakeCorruptionError", "LakeError", "LakeVersion",
    "LakeVersionNotFound", "LakeWriteError", "Manifest", "QueryRefused", "RawRestatementError",
]
