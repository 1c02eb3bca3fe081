"""`kobe verify --phase 2` and `--phase 5` pass on the embedded defaults; the CLI exits 1 on a failure."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kobe_pipelines.cli import main
from kobe_pipelines.verify.base import VerifyCheck
from kobe_pipelines.verify.runner import run_phases
from kobe_pipelines_tests.support.readable import assert_readable


@pytest.mark.slow
@pytest.mark.parametrize("phase", [2, 5])
def test_verify_when_run_on_the_embedded_defaults_then_every_check_of_the_phase_passes(phase):
    results = run_phases([phase])
    assert results and all(r.phase == phase for r in results)
    assert [r for r in results if not r.passed] == []


def test_verify_cli_when_a_check_fails_then_exit_code_1_and_the_failure_is_shown(monkeypatch):
    import kobe_pipelines.verify.runner as runner

    monkeypatch.setattr(runner, "run_phases", lambda phases: [VerifyCheck(2, "a check", False, "boom: the reason")])
    result = CliRunner().invoke(main, ["verify", "--phase", "2"])
    assert result.exit_code == 1
    assert "FAIL" in result.output and "boom: the reason" in result.output and "0 passed, 1 failed" in result.output


def test_verify_cli_when_phases_1_to_3_run_then_table_fits_100_columns_and_details_read_plainly():
    result = CliRunner().invoke(main, ["verify", "--phase", "1", "--phase", "2", "--phase", "3"])
    assert result.exit_code == 0, result.output
    assert_readable(result.output)
    # phase 2 rejects a bar with a NaN close: its detail names the value as NaN, not np.float64(nan)
    assert "(got NaN)" in " ".join(result.output.split())
