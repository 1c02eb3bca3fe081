"""Small durable SQLite files under `state/` (the order ledger, the slippage records).

SQLite, not DuckDB: several processes (the CLI, Dagster runs) open these files at once, and
SQLite takes turns on a write lock where DuckDB refuses a second process outright. Every
write is one transaction with `synchronous=FULL` (on disk when `commit` returns; `durable=False`,
for simulations and backtests whose state can be rebuilt by running them again: `synchronous=OFF`,
the same transactions without waiting for the disk, so an OS crash can lose them); a file that
is not a database, or has a table of another shape, raises `StateFileError` instead of being
recreated.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from kobe_pipelines.errors import StateFileError

BUSY_TIMEOUT_S = 10.0
# Files whose schema this process has applied and checked, by (device, inode, schema, table): the
# check runs once per file, not on every connection. A file replaced by another is checked again.
_CHECKED: set[tuple] = set()


def _file_key(path: Path, schema: str, table: str) -> tuple | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, hash(schema), table)


@contextmanager
def connect(path: Path, schema: str, table: str, columns: tuple[str, ...], write: bool = True,
            durable: bool = True) -> Iterator[sqlite3.Connection]:
    """A connection to `path` with `schema` applied (CREATE ... IF NOT EXISTS) and `table`
    checked to have exactly `columns`, inside one transaction (holding the write lock from the
    start when `write`); commits on success, rolls back on error, always closes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise StateFileError(path, f"cannot be opened ({exc})") from exc
    try:
        try:
            con.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=OFF")
            key = _file_key(path, schema, table)
            if key is None or key not in _CHECKED:
                con.executescript(schema)
                found = tuple(row[1] for row in con.execute(f"PRAGMA table_info({table})"))
                if found != columns:
                    raise StateFileError(path, f"table {table} has columns {list(found)}, expected {list(columns)}")
                key = _file_key(path, schema, table)
                if key is not None:
                    _CHECKED.add(key)
        except sqlite3.DatabaseError as exc:
            raise StateFileError(path, f"is not a usable SQLite database ({exc})") from exc
        con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield con
        except BaseException as exc:
            con.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError):
                raise StateFileError(path, f"failed: {exc}") from exc
            raise
        try:
            con.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise StateFileError(path, f"commit failed: {exc}") from exc
    finally:
        con.close()
