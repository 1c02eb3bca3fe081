"""Project-wide test settings: every test runs against a temporary lake and state folder, and a
run that skips any test fails (`support/no_skips.py`)."""

from __future__ import annotations

import pytest

from kobe_pipelines_tests.support.no_skips import pytest_configure, pytest_runtest_makereport  # noqa: F401 (hooks)


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
