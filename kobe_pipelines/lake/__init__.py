"""The versioned data lake (no Dagster import). Start with `Lake` (store.py).

Each module owns one job; each imports only the ones above it in this list:

    errors        the lake's errors, and telling a full or read-only disk apart
    manifest      a version's manifest: its files, their sha256, one content hash
    duck          the process's in-memory DuckDB for the lake's own look-ups
    arrow_keys    shared Arrow/pandas/key helpers (symbols, row membership, key searches)
    file_store    content-addressed files: write, sha256, hash cache, checks, reads with page checksums, raw partition names
    versions      versions on disk: manifests, CURRENT, pins, retention
    catalog       catalog.duckdb: views over the current and retained versions
    sessions      read-only DuckDB sessions: statement check and locked configuration
    symbol_reads  a few symbols' rows from only the row groups holding them (cached footers)
    reader        queries, read_bars, event returns, derived tables
    staging       ingested batches waiting for a freeze
    segments      derived tables: roles, row order, whole or one more segment
    history       which raw file holds which years (the closed years' history files, year files), their writer, compaction
    raw_bars      new bars, restated bars refused, the raw partitions of new bars, merging small files
    stream        a first freeze streamed a batch at a time into its raw files
    event_closes  the raw closes each action is computed from; when a late bar restates an event
    actions       fetched actions merged with stored ones, validated, provenance, set aside
    factors       which symbols to recompute; the factor table and events a refreeze adds
    derivation    the derived tables of a candidate, in the order they become known
    publish       prepare and publish (threads, ordered switch, checkpoints), the writer lock, repair
    store         `Lake`, the facade
"""

from kobe_pipelines.lake.actions import ActionsSetAside
from kobe_pipelines.lake.errors import (
    LakeCorruptionError, LakeError, LakeVersionNotFound, LakeWriteError, QueryRefused, RawRestatementError,
    SymbolRequestError,
)
from kobe_pipelines.lake.manifest import FileEntry, Manifest
from kobe_pipelines.lake.publish import Candidate, FreezeResult
from kobe_pipelines.lake.store import Lake, LakeVersion

__all__ = [
    "ActionsSetAside", "Candidate", "FileEntry", "FreezeResult", "Lake", "LakeCorruptionError", "LakeError", "LakeVersion",
    "LakeVersionNotFound", "LakeWriteError", "Manifest", "QueryRefused", "RawRestatementError", "SymbolRequestError",
]
