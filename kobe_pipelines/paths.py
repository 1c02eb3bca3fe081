"""Where the lake and the state live.

Read at call time, never at import time, so tests and commands can point a process at a
temporary folder by setting `KOBE_LAKE_DIR` / `KOBE_STATE_DIR`.
"""

from __future__ import annotations

import os
from pathlib import Path

LAKE_DIR_ENV = "KOBE_LAKE_DIR"
STATE_DIR_ENV = "KOBE_STATE_DIR"


def lake_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The data lake folder: `override`, else `$KOBE_LAKE_DIR`, else `./data_lake`."""
    return _resolve(override, LAKE_DIR_ENV, "data_lake")


def state_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The state folder (kill switch, ledgers, MLflow store): `override`, else `$KOBE_STATE_DIR`, else `./state`."""
    return _resolve(override, STATE_DIR_ENV, "state")


def _resolve(override: str | os.PathLike[str] | None, env: str, default: str) -> Path:
    raw = override if override not in (None, "") else os.environ.get(env) or default
    return Path(raw).expanduser().resolve()
