"""Safety state files are regular files, and opening one never blocks.

The kill switch, the high-water mark, the paper broker's book and the halt, equity, audit and
alert logs decide whether orders go out. Each must be a regular file. Anything else at one of
these paths is refused with `NotRegularFileError`, naming the path and what is there:

- a symbolic link, dangling or not: a link can point anywhere and be swapped between two
  reads, so the file a check read is not the file the next writer replaces;
- a FIFO (opening one for reading waits for a writer: `kobe halt status` would hang), a
  directory, a character or block device, a socket.

Every open examines the path with `lstat` first, opens with O_NOFOLLOW | O_NONBLOCK (a FIFO or
a link put there in between fails or returns at once instead of blocking or being followed),
then checks the opened descriptor with `fstat`. Callers decide what a refusal means; for every
safety file it means halted (fail closed).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from kobe_pipelines.errors import StateFileError

# Added to every open: never follow a link, never wait on a FIFO, never leak into a child.
_SAFE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFileError(StateFileError):
    """A safety state file's path holds something other than a regular file."""

    def __init__(self, path: str | os.PathLike[str], what: str):
        self.what = what
        super().__init__(path, f"is {what}, not a regular file (remove or replace it; links are never followed)")


def describe_mode(mode: int) -> str:
    """What an `st_mode` is, in words ("a symbolic link", "a FIFO (named pipe)", ...)."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "a regular file" if stat.S_ISREG(mode) else "not a file of a known kind"


def regular_stat(path: str | os.PathLike[str]) -> os.stat_result | None:
    """`lstat` of `path`: None when nothing is there, `NotRegularFileError` when it is not a
    regular file, `StateFileError` when it cannot be examined (a parent that is not a folder,
    a folder that may not be searched)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(path, f"cannot be examined ({exc.strerror})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(path, describe_mode(st.st_mode))
    return st


def open_regular(path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
    """`os.open(path, flags, mode)` for a regular file only (see the module docstring).

    `NotRegularFileError` when anything else is at `path`, before or after opening; any other
    `OSError` of the open itself (permission denied, read-only file system, no space) is raised
    unchanged. The caller closes the descriptor.
    """
    regular_stat(path)
    try:
        fd = os.open(path, flags | _SAFE_FLAGS, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link put there since the lstat
            raise NotRegularFileError(path, "a symbolic link") from exc
        if exc.errno == errno.ENXIO:  # a write-only open of a FIFO without a reader
            raise NotRegularFileError(path, "a FIFO (named pipe)") from exc
        if exc.errno == errno.EISDIR:
            raise NotRegularFileError(path, "a directory") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(path, describe_mode(st.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass(frozen=True)
class RegularFile:
    """The bytes of a regular file and its `fstat` when it was read."""

    data: bytes
    stat: os.stat_result

    @property
    def version(self) -> tuple[int, int, int, int, int]:
        """Changes whenever the file is replaced or rewritten: a key for caching what was parsed."""
        st = self.stat
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_regular(path: str | os.PathLike[str], max_bytes: int | None = None) -> RegularFile | None:
    """The whole regular file at `path`, or None when nothing is there.

    `NotRegularFileError` for anything but a regular file; `StateFileError` naming the path
    when it cannot be opened or read, or holds more than `max_bytes`.
    """
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(path, f"cannot be opened ({exc.strerror})") from exc
    try:
        st = os.fstat(fd)
        if max_bytes is not None and st.st_size > max_bytes:
            raise StateFileError(path, f"is {st.st_size:,} bytes, more than the {max_bytes:,} such a file can hold")
        chunks = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise StateFileError(path, f"holds more than the {max_bytes:,} bytes such a file can hold")
        return RegularFile(b"".join(chunks), st)
    except OSError as exc:
        raise StateFileError(path, f"cannot be read ({exc.strerror})") from exc
    finally:
        os.close(fd)


def version_of(path: str | os.PathLike[str]) -> tuple[int, int, int, int, int] | None:
    """`RegularFile.version` of the file at `path` without reading it; None when absent.
    Raises like `regular_stat`."""
    st = regular_stat(path)
    if st is None:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
