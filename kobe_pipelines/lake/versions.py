"""The lake's versions on disk: manifests, the CURRENT pointer, pins and retention.

    versions/<version id>/manifest.json   one folder per published version
    versions/.tmp-<id>, versions/.trash-<id>   a version being published or deleted
    CURRENT                               the current version id (replaced atomically)
    pins.json                             versions kept regardless of retention

A folder without a complete manifest is not a version. Nothing here writes data files or the
catalog; `publish` decides when each of these steps happens.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from kobe_pipelines.fsutil import atomic_write_json, atomic_write_text, fsync_dir
from kobe_pipelines.lake.errors import LakeCorruptionError, LakeError, LakeVersionNotFound
from kobe_pipelines.lake.manifest import FileEntry, Manifest

# A refreeze fetches corporate actions from the current version's last date minus this, so that
# actions announced late are caught again (`VersionStore.actions_fetch_start`).
ACTIONS_LOOKBACK = pd.Timedelta(days=30)


class VersionStore:
    """The versions of the lake at `root`. Every method reads the folder afresh."""

    def __init__(self, root: Path):
        self.root = root

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    # ---- reading -----------------------------------------------------------------------------
    def current_version_id(self) -> str | None:
        pointer = self.root / "CURRENT"
        if not pointer.exists():
            return None
        version_id = pointer.read_text().strip()
        if not version_id or not (self.versions_dir / version_id / "manifest.json").exists():
            raise LakeCorruptionError(str(pointer), f"points at '{version_id}', which has no manifest")
        return version_id

    def current_version(self) -> Manifest:
        version_id = self.current_version_id()
        if version_id is None:
            raise LakeError(f"the lake at {self.root} has no versions yet: run `kobe demo` or `kobe lake freeze`")
        return self.version(version_id)

    def current_or_none(self) -> Manifest | None:
        version_id = self.current_version_id()
        return self.version(version_id) if version_id else None

    def version(self, version_id: str) -> Manifest:
        path = self.versions_dir / version_id / "manifest.json"
        if not version_id or "/" in version_id or not path.exists():
            raise LakeVersionNotFound(version_id, [m.version_id for m in self.versions()])
        try:
            return Manifest.from_json(path.read_text())
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise LakeCorruptionError(str(path), f"unreadable manifest ({exc})") from exc

    def versions(self) -> list[Manifest]:
        """Published versions, oldest first. A folder without a complete manifest is not a version."""
        if not self.versions_dir.exists():
            return []
        found = []
        for child in self.versions_dir.iterdir():
            if child.name.startswith(".") or not (child / "manifest.json").exists():
                continue
            found.append(self.version(child.name))
        return sorted(found, key=lambda m: (m.created_at, m.version_id))

    def pins(self) -> dict[str, str]:
        path = self.root / "pins.json"
        if not path.exists():
            return {}
        try:
            pins = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise LakeCorruptionError(str(path), f"unreadable pins file ({exc})") from exc
        if not isinstance(pins, dict):
            raise LakeCorruptionError(str(path), "expected a JSON object of version id -> reason")
        return pins

    def actions_fetch_start(self, history_start: str) -> str:
        """Where a refreeze fetches corporate actions from: the current version's last date minus
        `ACTIONS_LOOKBACK`, or `history_start` when the lake holds no version yet."""
        current = self.current_or_none()
        last = current.end_date if current else None
        return str((pd.Timestamp(last) - ACTIONS_LOOKBACK).date()) if last else history_start

    # ---- writing -----------------------------------------------------------------------------
    def save_pins(self, pins: dict[str, str]) -> None:
        atomic_write_json(self.root / "pins.json", pins)

    def set_current(self, version_id: str) -> None:
        atomic_write_text(self.root / "CURRENT", version_id + "\n")

    def stage(self, manifest: Manifest) -> Path:
        """Write `manifest` into `versions/.tmp-<id>` (no version yet); the folder."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        staged = self.versions_dir / f".tmp-{manifest.version_id}"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        atomic_write_text(staged / "manifest.json", manifest.to_json())
        return staged

    def install(self, staged: Path, version_id: str) -> Path:
        """Rename a staged folder into place: from here on it is a version."""
        final = self.versions_dir / version_id
        os.replace(staged, final)
        fsync_dir(self.versions_dir)
        return final

    def delete(self, manifests: list[Manifest]) -> None:
        """Delete versions (renamed aside first, so that no half-deleted folder is a version)."""
        for manifest in manifests:
            trash = self.versions_dir / f".trash-{manifest.version_id}"
            os.replace(self.versions_dir / manifest.version_id, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def delete_folder(self, folder: Path) -> None:
        """Remove a staged or just installed version folder of a publish that failed."""
        shutil.rmtree(folder, ignore_errors=True)

    def remove_leftovers(self) -> None:
        """Remove the staged and half-deleted folders an interrupted writer left."""
        if self.versions_dir.exists():
            for leftover in self.versions_dir.glob(".t*"):  # .tmp-* and .trash-*
                shutil.rmtree(leftover, ignore_errors=True)

    def referenced_files(self) -> set[str]:
        """Every data file some version lists (paths relative to the root)."""
        return {entry.path for manifest in self.versions() for entry in manifest.files}


def new_manifest(entries: list[FileEntry], content_hash: str, provider: str, convention: str, notes: dict) -> Manifest:
    """The manifest of a new version of `entries`, named by the time (UTC) and its content hash."""
    raw = [e for e in entries if e.role == "raw_bars"]
    now = dt.datetime.now(dt.timezone.utc)
    counts: dict[str, int] = {"bars": sum(e.rows for e in raw)}
    for entry in entries:
        if entry.role != "raw_bars":  # a segmented table's files add up
            counts[entry.role] = counts.get(entry.role, 0) + entry.rows
    return Manifest(
        version_id=f"v{now:%Y%m%dT%H%M%S%f}Z-{content_hash[:8]}",
        created_at=now.isoformat(),
        provider=provider,
        dividend_convention=convention,
        start_date=min((e.min_date for e in raw if e.min_date), default=None),
        end_date=max((e.max_date for e in raw if e.max_date), default=None),
        row_counts=counts,
        files=tuple(sorted(entries, key=lambda e: (e.role, e.path))),
        content_hash=content_hash,
        notes=notes,
    )


def retained(versions: list[Manifest], current: str, pins: dict[str, str], retention: int
             ) -> tuple[list[Manifest], list[Manifest]]:
    """`versions` (oldest first) split into those kept -- the newest `retention`, the pinned ones
    and `current` -- and those to delete, each oldest first."""
    keep = {m.version_id for m in versions[-retention:]} | set(pins) | {current}
    return [m for m in versions if m.version_id in keep], [m for m in versions if m.version_id not in keep]
