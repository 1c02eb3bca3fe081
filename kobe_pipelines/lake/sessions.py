"""Read-only DuckDB sessions over a lake version: what `kobe lake query` and every lake read use.

A session is an in-memory DuckDB database holding the views `bars`, `bars_split_adjusted` and
`bars_raw` over one version's files, built from that version's manifest (so they show the
version `CURRENT` names, whatever `catalog.duckdb` says), and the table `lake_versions`. A
session for typed queries also attaches `catalog.duckdb` read-only as `catalog`, so that every
retained version is reachable as `catalog."<version id>".bars`.

Then the session is locked: DuckDB may open the Parquet files those views name and no other file
or URL, loads no extension (no install, no autoload), and its configuration cannot be changed
back (`lock_configuration`). Typed statements are checked before they run: only SELECT (with
DESCRIBE, SHOW, SUMMARIZE, FROM-first and VALUES, which DuckDB parses as SELECT) is accepted;
COPY, EXPORT, ATTACH, INSTALL, LOAD, SET, PRAGMA, CALL, CREATE, DROP and every other statement
are refused by name before DuckDB sees them. The lock is the second line: a lake file the
session may read could still be overwritten by a COPY, which the statement check refuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import duckdb
import pandas as pd

from kobe_pipelines.lake import catalog
from kobe_pipelines.lake.errors import LakeError, QueryRefused
from kobe_pipelines.lake.manifest import Manifest

CATALOG_ALIAS = "catalog"
# Extensions are neither installed nor loaded behind the user's back (httpfs would reach the network).
_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_persistent_secrets": False,
}
_WHY_REFUSED = {
    duckdb.StatementType.COPY: "it writes or reads files",
    duckdb.StatementType.EXPORT: "it writes files",
    duckdb.StatementType.ATTACH: "it opens another database",
    duckdb.StatementType.DETACH: "it changes the attached databases",
    duckdb.StatementType.LOAD: "it installs or loads an extension",
    duckdb.StatementType.SET: "it changes the session",
    duckdb.StatementType.PRAGMA: "it changes or inspects the session",
    duckdb.StatementType.CALL: "it runs a procedure",
    duckdb.StatementType.EXPLAIN: "EXPLAIN ANALYZE runs the statement it explains",
}


class LakeQueryError(LakeError):
    """A query over the lake failed in DuckDB (a syntax error, an unknown column...)."""


def read_only_statements(sql: str) -> list[str]:
    """The statements of `sql`, each a read-only SELECT; raises `QueryRefused` naming the first
    statement that is not, and `LakeQueryError` when the text does not parse."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise LakeQueryError(f"the query does not parse: {first_line(exc)}") from None
    if not statements:
        raise QueryRefused("the query is empty: give a SELECT statement")
    for statement in statements:
        if statement.type != duckdb.StatementType.SELECT:
            keyword = statement.query.split(maxsplit=1)[0].upper() if statement.query.split() else statement.type.name
            why = _WHY_REFUSED.get(statement.type, "it changes the database")
            raise QueryRefused(
                f"lake queries are read-only: {keyword} is refused ({why}); "
                "run SELECT over bars, bars_split_adjusted, bars_raw, lake_versions or catalog.\"<version id>\".bars")
    return [statement.query for statement in statements]


def open_session(root: Path, manifest: Manifest, versions: list[Manifest], current: str | None, pins: dict[str, str],
                 catalog_path: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A locked session with the views of `manifest` (a version of the lake at `root`) and the
    table `lake_versions` (`versions`, `current`, `pins`). With `catalog_path`, that catalog is
    attached read-only as `catalog` when it was written for this folder and these view
    definitions (the views of every retained version); the session may then read every
    retained version's files."""
    con = duckdb.connect(config=dict(_CONFIG))
    try:
        # Lake files are immutable (content-addressed): their Parquet footers can be cached for
        # the connection's life.
        con.execute("SET parquet_metadata_cache = true")
        catalog.create_views(con, root, manifest.files, schema_name="main")
        catalog.create_versions_table(con, versions, current, pins)
        readable = [root / entry.path for entry in manifest.files]
        if catalog_path is not None and _attach_catalog(con, root, catalog_path):
            readable += [root / entry.path for version in versions for entry in version.files]
        lock(con, readable)
    except BaseException:
        con.close()
        raise
    return con


def lock(con: duckdb.DuckDBPyConnection, readable: Iterable[Path]) -> None:
    """Allow `con` to open the files `readable` and nothing else, for good."""
    paths = sorted({str(path) for path in readable})
    con.execute(f"SET allowed_paths = {_sql_list(paths)}")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def run(con: duckdb.DuckDBPyConnection, statements: Sequence[str]) -> pd.DataFrame:
    """Run read-only `statements` (from `read_only_statements`) in order; the last one's rows.
    DuckDB's refusals of a file outside the lake become `QueryRefused`, its other errors
    `LakeQueryError`, each one line."""
    frame = pd.DataFrame()
    for statement in statements:
        try:
            frame = con.execute(statement).df()
        except duckdb.PermissionException as exc:
            raise QueryRefused(f"lake queries read only the lake's own files: {first_line(exc)}") from None
        except duckdb.Error as exc:
            raise LakeQueryError(first_line(exc)) from None
    return frame


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _attach_catalog(con: duckdb.DuckDBPyConnection, root: Path, path: Path) -> bool:
    """Attach `path` read-only as `catalog` if it describes this folder with today's views."""
    if not path.exists():
        return False
    try:
        con.execute(f"ATTACH '{_sql_text(str(path))}' AS {CATALOG_ALIAS} (READ_ONLY)")
    except duckdb.Error:
        return False
    state = catalog.read_attached_state(con, CATALOG_ALIAS)
    if state is None or state.root != str(root) or state.views != catalog.views_fingerprint():
        con.execute(f"DETACH {CATALOG_ALIAS}")
        return False
    return True


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join(f"'{_sql_text(value)}'" for value in values) + "]"

