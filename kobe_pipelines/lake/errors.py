"""Errors of the data lake. Each names the version, file or record concerned."""

from __future__ import annotations

import errno
from pathlib import Path

import duckdb

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


class SymbolRequestError(RecordError):
    """A read asked for a symbol that cannot be a ticker (or for one string instead of a list of them)."""

    def __init__(self, symbol: str, field: str, problem: str):
        super().__init__("symbol", symbol, field, problem)


class LakeBusyError(LakeError):
    """Another freeze holds the lake's lock."""


class LakeWriteError(LakeError):
    """The lake folder could not be written (a full disk, a read-only folder, no permission).

    `outcome` says what state the lake is left in, e.g. "nothing was published; version X stays
    current". The message is one line naming the folder, the cause and that outcome."""

    def __init__(self, root: Path, doing: str, cause: BaseException, outcome: str):
        self.root = root
        self.cause = cause
        self.outcome = outcome
        super().__init__(f"cannot {doing} the lake at {root}: {describe_write_failure(cause)}; {outcome}")


_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})
_WRITE_FAILURE_TEXTS = ("No space left on device", "Read-only file system", "Permission denied", "File too large",
                        "Disk quota exceeded", "Could not write file")


def is_write_failure(exc: BaseException) -> bool:
    """Whether `exc` is the file system refusing a write (a full disk, a read-only folder, no
    permission, a file size limit), as an OSError or as DuckDB reports it."""
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        return True
    if isinstance(exc, (OSError, duckdb.Error)):
        return any(marker in str(exc) for marker in _WRITE_FAILURE_TEXTS)
    return False


def describe_write_failure(cause: BaseException) -> str:
    """A short reason for a failed write: the disk is full, the folder is read-only, ..."""
    code = cause.errno if isinstance(cause, OSError) else None
    text = str(cause)
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in text:
        return "no space left on device (free some space and run it again)"
    if code == errno.EROFS or "Read-only file system" in text:
        return "the folder is on a read-only file system"
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return "permission denied (the folder is read-only for this user)"
    if code == errno.EFBIG or "File too large" in text:
        return "a file grew past the size this process may write (ulimit -f)"
    return " ".join(text.split()) or type(cause).__name__


class QueryRefused(LakeError):
    """A statement typed into a lake query is not a read-only SELECT (or reads outside the lake)."""
