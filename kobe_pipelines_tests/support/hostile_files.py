"""What a careless or hostile user can put at a state file's path instead of a regular file."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

DEVICE_NEEDS_ROOT = "creating a device node needs CAP_MKNOD (root); the other kinds still run"
NOT_REGULAR = ("dangling symlink", "symlink to a valid file", "fifo", "directory", "socket",
               pytest.param("character device", marks=pytest.mark.skip_allowed(reason=DEVICE_NEEDS_ROOT)))
WORDS = {
    "dangling symlink": "is a symbolic link",
    "symlink to a valid file": "is a symbolic link",
    "fifo": "is a FIFO (named pipe)",
    "directory": "is a directory",
    "socket": "is a socket",
    "character device": "is a character device",
}


def place(kind: str, path: Path, valid: bytes = b"") -> None:
    """Put a `kind` (one of NOT_REGULAR) at `path`; a link to a valid file points at `valid` bytes."""
    if kind == "dangling symlink":
        path.symlink_to(path.parent / f"{path.name}.missing-target")
    elif kind == "symlink to a valid file":
        target = path.parent / f"{path.name}.link-target"
        target.write_bytes(valid)
        path.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(path))  # the socket file stays after close
    elif kind == "character device":
        try:
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # the null device's numbers
        except PermissionError:
            pytest.skip(DEVICE_NEEDS_ROOT)
    else:
        raise ValueError(kind)
