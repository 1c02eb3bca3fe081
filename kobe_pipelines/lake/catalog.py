"""DuckDB views over lake versions.

`catalog.duckdb` holds, for the current version, the views `bars` (split- and dividend-adjusted,
"total return"), `bars_split_adjusted` and `bars_raw`; the same three views for every retained
version in a schema named after it (``SELECT * FROM "v2026...".bars``); and the table
`lake_versions`. Adjusted prices are raw x factor, joined as-of on the factor intervals.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import duckdb
import pandas as pd
import pyarrow as pa

from kobe_pipelines.fsutil import fsync_dir
from kobe_pipelines.lake import duck
from kobe_pipelines.lake.errors import is_write_failure
from kobe_pipelines.lake.manifest import FileEntry, Manifest

log = logging.getLogger(__name__)

_RAW_COLUMNS = "b.symbol, b.date, b.open, b.high, b.low, b.close, b.volume"
VIEW_NAMES = ("bars_raw", "bars_split_adjusted", "bars")


def _quote_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def view_sql(root: Path, files: Sequence[FileEntry]) -> dict[str, str]:
    """The SELECT behind each of the three views over `files` (a version's), with absolute paths."""
    raw_files = [str(root / e.path) for e in files if e.role == "raw_bars"]
    factor_files = [str(root / e.path) for e in files if e.role == "factors"]
    if raw_files:
        # The year=YYYY and through=YYYY folders are not read as a partition column: the paths
        # are listed, and DuckDB's detection of them would add work to every query.
        raw = f"SELECT {_RAW_COLUMNS} FROM read_parquet({_quote_list(raw_files)}, hive_partitioning = false) b"
    else:
        raw = (
            "SELECT NULL::VARCHAR AS symbol, NULL::DATE AS date, NULL::DOUBLE AS open, NULL::DOUBLE AS high, "
            "NULL::DOUBLE AS low, NULL::DOUBLE AS close, NULL::DOUBLE AS volume WHERE false"
        )
    if not factor_files:
        return {"bars_raw": raw, "bars_split_adjusted": raw, "bars": raw}

    # An interval applies from valid_from (inclusive) to valid_to (exclusive; NULL = open-ended);
    # a symbol's intervals do not overlap, so a bar joins at most one (none: factor 1). A plain
    # join on the symbol lets DuckDB carry a filter on the symbol into the factors' scan.
    def factor(col: str) -> str:
        return f"coalesce(f.{col}, 1.0)"

    def adjusted(price_col: str) -> str:
        prices = ", ".join(f"b.{c} * {factor(price_col)} AS {c}" for c in ("open", "high", "low", "close"))
        return (
            f"SELECT b.symbol, b.date, {prices}, b.volume * {factor('volume_factor')} AS volume "
            f"FROM ({raw}) b LEFT JOIN read_parquet({_quote_list(factor_files)}) f "
            "ON b.symbol = f.symbol AND b.date >= f.valid_from AND (f.valid_to IS NULL OR b.date < f.valid_to)"
        )

    return {"bars_raw": raw, "bars_split_adjusted": adjusted("split_factor"), "bars": adjusted("price_factor")}


def create_views(con: duckdb.DuckDBPyConnection, root: Path, files: Sequence[FileEntry], schema_name: str,
                 database: str | None = None) -> None:
    """The three views over `files` in `schema_name` (of the attached `database`, when given)."""
    prefix = f'"{database}".' if database else ""
    if schema_name != "main":
        con.execute(f'CREATE SCHEMA IF NOT EXISTS {prefix}"{schema_name}"')
    for name, sql in view_sql(root, files).items():
        con.execute(f'CREATE OR REPLACE VIEW {prefix}"{schema_name}"."{name}" AS {sql}')


def versions_frame(versions: list[Manifest], current: str | None, pins: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "version_id": m.version_id,
                "created_at": pd.Timestamp(m.created_at),
                "content_hash": m.content_hash,
                "provider": m.provider,
                "dividend_convention": m.dividend_convention,
                "start_date": m.start_date,
                "end_date": m.end_date,
                "bars": m.row_counts.get("bars", 0),
                "is_current": m.version_id == current,
                "pinned_reason": pins.get(m.version_id),
            }
            for m in versions
        ],
        columns=[
            "version_id", "created_at", "content_hash", "provider", "dividend_convention",
            "start_date", "end_date", "bars", "is_current", "pinned_reason",
        ],
    )


def create_versions_table(
    con: duckdb.DuckDBPyConnection, versions: list[Manifest], current: str | None, pins: dict[str, str],
    database: str | None = None,
) -> None:
    # through Arrow: DuckDB sets up a scan of an Arrow table faster than one of a pandas frame
    rows = pa.Table.from_pandas(versions_frame(versions, current, pins), preserve_index=False)  # noqa: F841
    target = f'"{database}".main.lake_versions' if database else "lake_versions"
    con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM rows")


def temporary_path(path: Path) -> Path:
    """Where this process writes a new catalog before renaming it over `path`."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def leftovers(path: Path) -> list[Path]:
    """Temporary catalogs (and their DuckDB write-ahead logs) of interrupted publishes: files
    `.catalog.duckdb.<pid>.tmp` and `.catalog.duckdb.<pid>.tmp.wal` beside `path`. Only a
    process holding the lake's lock writes them, so under the lock every one found is a leftover."""
    return sorted(path.parent.glob(f".{path.name}.*.tmp")) + sorted(path.parent.glob(f".{path.name}.*.tmp.wal"))


def remove_temporary(tmp: Path) -> None:
    tmp.unlink(missing_ok=True)
    Path(str(tmp) + ".wal").unlink(missing_ok=True)


def write(root: Path, path: Path, versions: list[Manifest], current: str | None, pins: dict[str, str]) -> Path:
    """Write the catalog of `versions` (`current` under the plain view names) beside `path`, and
    return that temporary file; `install` renames it into place. Nothing is left behind on an error.

    The retained versions' schemas never change (versions are immutable), so they are carried
    over from the old catalog when it was written for this lake folder by these view
    definitions; only new versions' views are bound (binding a view reads every file's footer).
    An old catalog that cannot be read is replaced by one written from scratch."""
    tmp = temporary_path(path)
    carry = path.exists()
    try:
        _write(root, path, tmp, versions, current, pins, carry=carry)
    except (duckdb.Error, OSError) as exc:
        remove_temporary(tmp)
        if not carry or is_write_failure(exc):
            raise
        log.warning("lake: rebuilding the catalog from scratch (the old one could not be carried over: %s)", exc)
        try:
            _write(root, path, tmp, versions, current, pins, carry=False)
        except BaseException:
            remove_temporary(tmp)
            raise
    except BaseException:
        remove_temporary(tmp)
        raise
    return tmp


def install(tmp: Path, path: Path) -> None:
    """Rename a catalog written by `write` over `path` (atomic for readers)."""
    os.replace(tmp, path)
    Path(str(tmp) + ".wal").unlink(missing_ok=True)
    fsync_dir(path.parent)


def rebuild(root: Path, path: Path, versions: list[Manifest], current: str | None, pins: dict[str, str]) -> None:
    """`write`, then `install`."""
    install(write(root, path, versions, current, pins), path)


def _write(root: Path, path: Path, tmp: Path, versions: list[Manifest], current: str | None, pins: dict[str, str],
           carry: bool) -> None:
    remove_temporary(tmp)
    if carry:
        shutil.copyfile(path, tmp)
    # Attached to the process's open DuckDB rather than opened on its own (see `duck`).
    fingerprint = views_fingerprint()
    with duck.attached(tmp) as (con, database):
        # One transaction (one commit), and the files' Parquet footers read once for all views.
        con.execute("SET parquet_metadata_cache = true")
        con.execute("BEGIN TRANSACTION")
        try:
            carried = _carried_versions(con, database, root, fingerprint) if carry else set()
            wanted = {m.version_id for m in versions}
            for stale in sorted(carried - wanted):
                con.execute(f'DROP SCHEMA "{database}"."{stale}" CASCADE')
            for manifest in versions:
                if manifest.version_id not in carried:
                    create_views(con, root, manifest.files, manifest.version_id, database)
            for name in VIEW_NAMES:
                if current in wanted:  # the current version's views, under their plain names
                    con.execute(f'CREATE OR REPLACE VIEW "{database}".main."{name}" AS SELECT * FROM "{database}"."{current}"."{name}"')
                else:  # no current version: no main views (a carried catalog may hold old ones)
                    con.execute(f'DROP VIEW IF EXISTS "{database}".main."{name}"')
            create_versions_table(con, versions, current, pins, database)
            con.execute(f'CREATE OR REPLACE TABLE "{database}".main.{_META} AS SELECT ? AS root, ? AS views, ? AS current_version',
                        [str(root), fingerprint, current])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")  # so that the file detaches cleanly before the error propagates
            raise


_META = "kobe_catalog_meta"  # the lake folder, view definitions and current version the catalog was written for


@dataclass(frozen=True)
class CatalogState:
    """What a catalog file was written for: the lake folder, the view definitions
    (`views_fingerprint`) and the version its plain views show (None: no current version)."""

    root: str
    views: str
    current_version: str | None


def read_state(path: Path) -> CatalogState | None:
    """The record `write` leaves in the catalog at `path`; None when the file is missing,
    unreadable, or written without that record."""
    if not path.exists():
        return None
    try:
        with duck.attached(path, read_only=True) as (con, database):
            return read_attached_state(con, database)
    except (duckdb.Error, OSError):
        return None


def read_attached_state(con: duckdb.DuckDBPyConnection, database: str) -> CatalogState | None:
    """`read_state` of a catalog attached to `con` as `database`."""
    columns = {row[0] for row in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' AND table_name = ?",
        [database, _META]).fetchall()}
    if not {"root", "views", "current_version"} <= columns:
        return None
    row = con.execute(f'SELECT root, views, current_version FROM "{database}".main.{_META}').fetchone()
    return CatalogState(*row) if row is not None else None


def _carried_versions(con: duckdb.DuckDBPyConnection, database: str, root: Path, fingerprint: str) -> set[str]:
    """The version schemas of the copied catalog that can be kept as they are: all of them when
    it was written for `root` with today's view definitions (`fingerprint`), none otherwise (all
    are dropped)."""
    schemas = {row[0] for row in con.execute(
        "SELECT schema_name FROM duckdb_schemas() WHERE database_name = ? AND NOT internal", [database]).fetchall()}
    schemas.discard("main")
    tables = {row[0] for row in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main'", [database]).fetchall()}
    meta = con.execute(f'SELECT root, views FROM "{database}".main.{_META}').fetchone() if _META in tables else None
    if meta == (str(root), fingerprint):
        return schemas
    for schema in sorted(schemas):
        con.execute(f'DROP SCHEMA "{database}"."{schema}" CASCADE')
    return set()


def views_fingerprint() -> str:
    """Changes whenever `view_sql` would write other views for the same files."""
    probe = [FileEntry("raw/a.parquet", "0", "raw_bars", 0, 0), FileEntry("factors/b.parquet", "0", "factors", 0, 0)]
    text = json.dumps([view_sql(Path("/lake"), probe), view_sql(Path("/lake"), probe[:1]), view_sql(Path("/lake"), [])],
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def problems(root: Path, path: Path, current: str | None) -> list[str]:
    """What is wrong with the catalog at `path` of the lake at `root` whose CURRENT names
    `current`: it shows another version, was written for another folder or older view
    definitions, or is missing or unreadable. Empty when all is well (or there is no version)."""
    if current is None:
        return []
    state = read_state(path)
    if state is None:
        return [f"catalog.duckdb is missing or unreadable (CURRENT names {current})"]
    if state.root != str(root):
        return [f"catalog.duckdb was written for the lake folder {state.root}"]
    if state.views != views_fingerprint():
        return ["catalog.duckdb holds views of an older definition"]
    if state.current_version != current:
        return [f"catalog.duckdb shows version {state.current_version} but CURRENT names {current}"]
    return []
