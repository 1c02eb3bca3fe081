"""Advisory file locks shared by every process writing the alert files (Dagster runs in several).

POSIX `flock`: held by an open file description, so two threads of one process that each open
the lock file exclude each other too. The lock files are empty and may be deleted when idle.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kobe_pipelines.regular_files import open_regular


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created when missing), waiting for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = open_regular(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def try_exclusive(path: Path) -> Iterator[bool]:
    """Yield True holding the lock on `path`, or False at once when someone else holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = open_regular(path, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
