"""`kobe verify --phase 1` (kobe_pipelines/verify/phase1.py)."""

from __future__ import annotations

from kobe_pipelines.verify.phase1 import run_checks


def test_run_checks_when_run_in_a_fresh_workdir_then_every_phase_1_check_passes(tmp_path):
    results = run_checks(tmp_path)
    assert len(results) == 7
    assert [r.name for r in results if not r.passed] == [], [r.detail for r in results if not r.passed]
    assert all(r.phase == 1 for r in results)
