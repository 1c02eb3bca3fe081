"""The test session cannot reach the checkout's own state/ and data_lake/."""

from __future__ import annotations

from kobe_pipelines import paths, settings
from kobe_pipelines_tests.conftest import REPO, folder_fingerprint


def test_default_folders_when_the_suite_runs_then_none_is_inside_the_checkout():
    for folder in (paths.state_dir(), paths.lake_dir(), settings.dagster_home()):
        assert REPO not in folder.parents and folder != REPO


def test_folder_fingerprint_when_a_guarded_file_changes_then_its_digest_changes(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "KILL_SWITCH").write_text("engaged")
    before = folder_fingerprint(tmp_path)
    (tmp_path / "state" / "KILL_SWITCH").write_text("cleared")
    (tmp_path / "data_lake").mkdir()
    (tmp_path / "data_lake" / "CURRENT").write_text("v1")
    after = folder_fingerprint(tmp_path)
    assert before.keys() == {"state/KILL_SWITCH"} and after.keys() == {"state/KILL_SWITCH", "data_lake/CURRENT"}
    assert before["state/KILL_SWITCH"] != after["state/KILL_SWITCH"]
