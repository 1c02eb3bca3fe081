"""One in-memory DuckDB database per process for the lake's own short queries.

Opening a database costs about 10 ms (its thread pool and buffer manager; 30 ms with a file), a
cursor on an open one about 0.2 ms: a nightly refreeze opened two (one the catalog file) and spent
about a tenth of its time there. Each use gets its own cursor (a connection of its own to the shared database), so threads
never share one. A forked child opens its own database instead of using its parent's, and keeps
the parent's object alive without touching it: destroying it would join worker threads that do not
exist in the child.
"""

from __future__ import annotations

import itertools
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

_lock = threading.Lock()
_database: tuple[int, duckdb.DuckDBPyConnection] | None = None
_inherited: list[duckdb.DuckDBPyConnection] = []  # a parent's database, never used nor destroyed
_aliases = itertools.count()


@contextmanager
def cursor() -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh cursor on the process's in-memory database, closed afterwards."""
    global _database
    with _lock:
        if _database is None or _database[0] != os.getpid():
            if _database is not None:
                _inherited.append(_database[1])
            _database = (os.getpid(), duckdb.connect())
        con = _database[1].cursor()
    try:
        yield con
    finally:
        con.close()


def warm() -> None:
    """Open the process's database and run one query (the first costs tens of ms). The lake calls
    it from a background thread at the start of a freeze: DuckDB does this without the GIL."""
    with cursor() as con:
        con.execute("SELECT 1").fetchall()


@contextmanager
def attached(path: Path, read_only: bool = False) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A cursor with the database file `path` attached (created when missing, unless
    `read_only`), and the name it is attached under; detached (which writes it out) on leaving."""
    alias = f"kobe_attached_{os.getpid()}_{next(_aliases)}"
    mode = " (READ_ONLY)" if read_only else ""
    with cursor() as con:
        con.execute(f"ATTACH '{_quoted(path)}' AS \"{alias}\"{mode}")
        try:
            yield con, alias
        finally:
            con.execute(f'DETACH "{alias}"')


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
