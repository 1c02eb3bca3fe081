"""Running the real `kobe` command line in a child process, optionally under a read-only folder or
a file-size limit that really stop its writes (also when the tests run as root)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

KOBE = [sys.executable, "-c", "from kobe_pipelines.cli import main; main(prog_name='kobe')"]

# Drops CAP_DAC_OVERRIDE from the bounding set, then execs the command: a root child then obeys
# file modes like any user (PR_CAPBSET_DROP = 24, CAP_DAC_OVERRIDE = 1). Exit 97: not permitted.
_OBEY_MODES = """
import ctypes, os, sys
if os.geteuid() == 0 and ctypes.CDLL(None, use_errno=True).prctl(24, 1, 0, 0, 0) != 0:
    sys.exit(97)
os.execv(sys.argv[1], sys.argv[1:])
"""

# Limits every file this process writes to 0 bytes (RLIMIT_FSIZE): a write fails as on a full
# disk (EFBIG; Python ignores SIGXFSZ), then execs the command.
_NO_ROOM = """
import os, resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
os.execv(sys.argv[1], sys.argv[1:])
"""


def cli_state(tmp_path: Path, monkeypatch) -> Path:
    """The state folder a command line test runs against (KOBE_STATE_DIR of the root conftest),
    created, with the working directory moved so that no developer's .env is read."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "state"
    folder.mkdir()
    return folder


def kobe(*args: str, obey_modes: bool = False, no_room: bool = False, cwd: Path | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess:
    command = [*KOBE, *args]
    if obey_modes:
        command = [sys.executable, "-c", _OBEY_MODES, *command]
    if no_room:
        command = [sys.executable, "-c", _NO_ROOM, *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def modes_are_enforced(folder: Path) -> tuple[bool, str]:
    """Whether a child started with `obey_modes` is stopped by a 0555 folder here, and why not."""
    probe = folder / "mode-probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        result = subprocess.run([sys.executable, "-c", _OBEY_MODES, sys.executable, "-c",
                                 f"open({str(probe / 'x')!r}, 'w')"], capture_output=True, text=True, timeout=60)
    finally:
        probe.chmod(0o755)
    if result.returncode == 97:
        return False, "running as root without CAP_SETPCAP: a read-only folder cannot stop this user's writes"
    if result.returncode == 0:
        return False, "a 0555 folder does not stop writes here (root with CAP_DAC_OVERRIDE kept)"
    return True, ""
