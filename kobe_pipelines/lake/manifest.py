"""The manifest of a lake version: what it contains, where it came from, and how to check it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

MANIFEST_SCHEMA = 1


@dataclass(frozen=True)
class FileEntry:
    """One immutable file of the lake. `path` is relative to the lake root (POSIX separators)."""

    path: str
    sha256: str
    role: str  # raw_bars | splits | dividends | factors | adjustment_events | action_provenance | actions_set_aside
    rows: int
    bytes: int
    min_date: str | None = None
    max_date: str | None = None


@dataclass(frozen=True)
class Manifest:
    version_id: str
    created_at: str  # ISO 8601, UTC
    provider: str
    dividend_convention: str
    start_date: str | None  # first bar date in the version (exchange date)
    end_date: str | None  # last bar date in the version
    row_counts: dict[str, int]
    files: tuple[FileEntry, ...]
    content_hash: str
    schema: int = MANIFEST_SCHEMA
    notes: dict[str, Any] = field(default_factory=dict)

    def files_with_role(self, role: str) -> list[FileEntry]:
        return [f for f in self.files if f.role == role]

    def to_json(self) -> str:
        payload = asdict(self)
        payload["files"] = [asdict(f) for f in self.files]
        return json.dumps(payload, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        payload = json.loads(text)
        payload["files"] = tuple(FileEntry(**f) for f in payload["files"])
        return cls(**payload)


# Provenance (when each action was first fetched) is recorded but is not content: re-fetching the
# same actions later must not make a new version.
CONTENT_ROLES = ("raw_bars", "splits", "dividends", "factors", "actions_set_aside")


def content_hash(files: list[FileEntry] | tuple[FileEntry, ...], dividend_convention: str) -> str:
    """sha256 over the content files' hashes (order-independent) and the adjustment convention."""
    parts = sorted(f"{f.role}:{f.sha256}" for f in files if f.role in CONTENT_ROLES)
    digest = hashlib.sha256()
    digest.update(f"convention:{dividend_convention}\n".encode())
    for part in parts:
        digest.update(part.encode() + b"\n")
    return digest.hexdigest()
