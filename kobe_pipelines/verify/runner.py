"""Runs the phase checks in a temporary workspace and prints a pass/fail table."""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path

from kobe_pipelines.verify.base import VerifyCheck

PHASES = (1, 2, 3, 4, 5)


def run_phases(phases: list[int] | None = None) -> list[VerifyCheck]:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    results: list[VerifyCheck] = []
    for phase in phases or list(PHASES):
        try:
            module = importlib.import_module(f"kobe_pipelines.verify.phase{phase}")
        except ModuleNotFoundError as exc:
            results.append(VerifyCheck(phase, "phase checks present", False, f"no checks for phase {phase}: {exc}"))
            continue
        with tempfile.TemporaryDirectory(prefix=f"kobe-verify-{phase}-") as tmp:
            workdir = Path(tmp)
            saved = {k: os.environ.get(k) for k in ("KOBE_LAKE_DIR", "KOBE_STATE_DIR", "MLFLOW_TRACKING_URI")}
            os.environ["KOBE_LAKE_DIR"] = str(workdir / "data_lake")
            os.environ["KOBE_STATE_DIR"] = str(workdir / "state")
            os.environ.pop("MLFLOW_TRACKING_URI", None)
            try:
                results.extend(module.run_checks(workdir))
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
    return results


def print_table(results: list[VerifyCheck]) -> None:
    """One row per check (long details wrap inside the 100 columns), then the count."""
    from kobe_pipelines.cli.tables import Column, echo_table

    rows = [{"phase": r.phase, "check": r.name, "result": "PASS" if r.passed else "FAIL", "detail": r.detail}
            for r in results]
    echo_table(rows, [Column("phase", "phase", "int"), Column("check", "check"), Column("result", "result"),
                      Column("detail", "detail")], title="kobe verify")
    passed = sum(r.passed for r in results)
    print(f"{passed} passed, {len(results) - passed} failed")
