"""Project-wide test settings: every test runs against a temporary lake and state folder, and a
run that skips any test fails (`support/no_skips.py`)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from kobe_pipelines_tests.support import no_skips
from kobe_pipelines_tests.support.no_skips import pytest_runtest_makereport  # noqa: F401 (hook)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """No test may read or write the developer's real data_lake/ or state/."""
    monkeypatch.setenv("KOBE_LAKE_DIR", str(tmp_path / "data_lake"))
    monkeypatch.setenv("KOBE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "False")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("ALPACA_SECRET_KEY", raising=False)
    monkeypatch.delenv("KOBE_LIVE_TRADING", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


# ---- the checkout's own lake and state are out of reach -----------------------------------------
REPO = Path(__file__).resolve().parents[1]
GUARDED = ("state", "data_lake", "mlruns", "mlartifacts")  # what a stray default would write in the checkout


def pytest_configure(config):
    """Before any fixture (module- and session-wide ones too) or test runs: every default folder
    points into a temporary folder of this session, never at the checkout's `state/` or `data_lake/`."""
    no_skips.pytest_configure(config)
    session_dir = Path(tempfile.mkdtemp(prefix="kobe-tests-"))
    os.environ["KOBE_LAKE_DIR"] = str(session_dir / "data_lake")
    os.environ["KOBE_STATE_DIR"] = str(session_dir / "state")
    os.environ["DAGSTER_HOME"] = str(session_dir / "dagster")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    config._kobe_guard = folder_fingerprint(REPO)


def folder_fingerprint(root: Path, hash_below: int = 64 << 20) -> dict[str, str]:
    """Every file under the guarded folders of `root` (path -> sha256; size and modification time
    for a file of `hash_below` bytes or more, such as a large lake's Parquet)."""
    digests = {}
    for name in GUARDED:
        for path in sorted((root / name).rglob("*")) if (root / name).exists() else []:
            if path.is_file():
                stat = path.stat()
                digests[str(path.relative_to(root))] = (
                    hashlib.sha256(path.read_bytes()).hexdigest() if stat.st_size < hash_below else f"{stat.st_size}:{stat.st_mtime_ns}"
                )
    return digests


@pytest.fixture(autouse=True, scope="session")
def _checkout_state_untouched(request):
    """The whole session leaves the checkout's state/, data_lake/ (and MLflow's default mlruns/)
    exactly as they were: checked once every test has run."""
    yield
    before, after = request.config._kobe_guard, folder_fingerprint(REPO)
    changed = sorted(set(before) ^ set(after) | {k for k in before.keys() & after.keys() if before[k] != after[k]})
    assert not changed, f"the tests wrote into the checkout: {changed[:10]}"
