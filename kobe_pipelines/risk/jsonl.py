"""Append-only JSON Lines files under state/: durable appends and tolerant reads.

A record is only complete with its newline. A crash in the middle of an append can leave a
torn last line; readers skip it with a `TornLineWarning` and keep every complete record, and
the next writer moves the fragment to a `<name>.torn-<UTC time>` file beside the log (kept as
evidence) before appending, so the log stays valid JSONL that DuckDB reads as it is.

A log's path must hold a regular file: reading or appending to anything else (a symbolic link,
a FIFO, a directory, a device) raises `NotRegularFileError` and never blocks (`regular_files`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

from kobe_pipelines.fsutil import atomic_write_bytes, fsync_dir
from kobe_pipelines.regular_files import open_regular, read_regular


class TornLineWarning(UserWarning):
    """A line of an append-only log could not be parsed and was skipped."""


def iter_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield each complete JSON object of `path` in order; a missing file yields nothing.

    A last line without its newline (a crash mid-append) and any line that does not parse are
    skipped with a `TornLineWarning` naming the file and line; the records around them are kept.
    `StateFileError` (`NotRegularFileError`) when the path holds anything but a regular file or
    cannot be read.
    """
    file = Path(path)
    found = read_regular(file)
    if found is None:
        return
    lines = found.data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError as exc:
            warnings.warn(f"{file}: line {number} is not valid JSON and was skipped ({exc})", TornLineWarning, stacklevel=2)
            continue
        if isinstance(record, dict):
            yield record
        else:
            warnings.warn(f"{file}: line {number} is not a JSON object and was skipped", TornLineWarning, stacklevel=2)
    if tail.strip():
        warnings.warn(
            f"{file}: last line ({len(tail)} bytes) has no newline, a torn append; skipped", TornLineWarning, stacklevel=2
        )


def repair_torn_tail(path: str | os.PathLike[str]) -> Path | None:
    """Move a torn last line (bytes after the last newline) to a side file and cut it off.

    Returns the side file, or None when the log is absent or ends cleanly. Complete records are
    never touched: only bytes after the last newline, which no reader counts as a record.
    """
    file = Path(path)
    try:
        fd = open_regular(file, os.O_RDWR)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb+") as handle:
        size = os.fstat(fd).st_size
        if size == 0:
            return None
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return None
        # Torn tails are short (one record); scan back in blocks for the last newline.
        end, block, cut = size, 1 << 16, 0
        while end > 0:
            start = max(0, end - block)
            handle.seek(start)
            chunk = handle.read(end - start)
            at = chunk.rfind(b"\n")
            if at >= 0:
                cut = start + at + 1
                break
            end = start
        handle.seek(cut)
        fragment = handle.read()
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        side = atomic_write_bytes(file.with_name(f"{file.name}.torn-{stamp}"), fragment)
        handle.truncate(cut)
        handle.flush()
        os.fsync(handle.fileno())
    return side


def append_record(path: str | os.PathLike[str], record: dict[str, Any], fsync: bool = True) -> None:
    """Append one record as a line and fsync it (for rare events such as halts and clears);
    `fsync=False` (simulations whose state a rerun rebuilds): the same append without waiting
    for the disk.

    The folder must exist: creating the state folder is never a side effect of logging.
    """
    file = Path(path)
    repair_torn_tail(file)
    created = not file.exists()
    line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
    fd = open_regular(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        write_all(fd, line)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    if created and fsync:
        fsync_dir(file.parent)


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a regular file rarely writes short, but may)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
