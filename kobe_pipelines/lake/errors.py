"""Errors of the data lake. Each names the version, file or record concerned."""

from __future__ import annotations

from kobe_pipelines.errors import KobeError, RecordError


class LakeError(KobeError):
    """Base class of lake errors."""


class LakeVersionNotFound(LakeError, LookupError):
    def __init__(self, version_id: str, known: list[str] | None = None):
        self.version_id = version_id
        hint = f"; known versions: {', '.join(known[-5:])}" if known else "; the lake has no versions yet"
        super().__init__(f"lake version '{version_id}' does not exist{hint}")


class LakeCorruptionError(LakeError):
    """A file the lake relies on is missing, unreadable or no longer matches its recorded sha256."""

    def __init__(self, path: str, problem: str):
        self.path = path
        super().__init__(f"lake file {path}: {problem}")


class RawRestatementError(RecordError):
    """A provider re-delivered a stored raw bar with different values; raw bars are immutable."""


class LakeBusyError(LakeError):
    """Another freeze holds the lake's lock."""
