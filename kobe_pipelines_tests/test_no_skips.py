"""The test suite's rule that a run skipping any test fails (kobe_pipelines_tests/support/no_skips.py),
checked on small suites run by pytest in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run_suite(folder: Path, tests: str) -> subprocess.CompletedProcess:
    (folder / "pytest.ini").write_text("[pytest]\n")  # the folder is its own root: no project settings
    (folder / "test_sample.py").write_text(tests)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "kobe_pipelines_tests.support.no_skips",
                           "-p", "no:cacheprovider", "-q", "-rfE", str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_run_when_a_test_skips_then_it_fails_naming_the_test_and_the_skip_reason(tmp_path):
    result = _run_suite(tmp_path, "import pytest\n\n"
                                  "def test_ok():\n    pass\n\n"
                                  "def test_needs_data():\n    pytest.skip('../shared/refdata is not there')\n")
    assert result.returncode == 1, result.stdout
    assert "1 failed, 1 passed" in result.stdout
    assert "test_needs_data skipped (../shared/refdata is not there); a run must skip nothing" in result.stdout


def test_run_when_a_skipif_or_fixture_skip_then_each_fails(tmp_path):
    result = _run_suite(tmp_path, "import pytest\n\n"
                                  "@pytest.fixture\ndef gpu():\n    pytest.skip('no GPU')\n\n"
                                  "@pytest.mark.skipif(True, reason='always')\ndef test_a():\n    pass\n\n"
                                  "def test_b(gpu):\n    pass\n")
    assert result.returncode == 1
    assert "test_a skipped (always)" in result.stdout and "test_b skipped (no GPU)" in result.stdout
    assert " skipped" not in result.stdout.splitlines()[-1]  # the summary counts no skip


def test_run_when_the_skip_is_marked_allowed_with_a_reason_then_it_stays_a_skip_and_the_run_passes(tmp_path):
    result = _run_suite(tmp_path, "import pytest\n\n"
                                  "@pytest.mark.skip_allowed(reason='needs CAP_MKNOD')\n"
                                  "def test_device():\n    pytest.skip('not root')\n")
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout


def test_run_when_marked_allowed_without_a_reason_then_the_skip_still_fails(tmp_path):
    result = _run_suite(tmp_path, "import pytest\n\n"
                                  "@pytest.mark.skip_allowed(reason=' ')\n"
                                  "def test_device():\n    pytest.skip('not root')\n")
    assert result.returncode == 1
    assert "is marked skip_allowed without a reason, and skipped: not root" in result.stdout


def test_run_when_a_test_is_an_expected_failure_then_it_is_not_counted_as_a_skip(tmp_path):
    result = _run_suite(tmp_path, "import pytest\n\n"
                                  "@pytest.mark.xfail(reason='known', strict=True)\n"
                                  "def test_known():\n    assert False\n")
    assert result.returncode == 0 and "1 xfailed" in result.stdout
