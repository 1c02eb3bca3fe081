"""`kobe verify --phase 3`: the paper-trade test (kobe_pipelines/verify/phase3.py)."""

from kobe_pipelines.verify.phase3 import run_checks


def test_run_checks_when_embedded_defaults_then_every_check_passes(tmp_path):
    results = run_checks(tmp_path)
    assert [r.name for r in results if not r.passed] == [], [r.detail for r in results if not r.passed]
    assert len(results) == 8 and all(r.phase == 3 for r in results)
