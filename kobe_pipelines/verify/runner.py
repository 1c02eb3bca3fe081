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
    from rich.console import Console
    from rich.table import Table

    table = Table(title="kobe verify")
    for column in ("phase", "check", "result", "detail"):
        table.add_column(column)
    for r in results:
        table.add_row(str(r.phase), r.name, "[green]PASS[/]" if r.passed else "[red]FAIL[/]", r.detail)
    Console(width=160).print(table)
    passed = sum(r.passed for r in results)
    print(f"{passed} passed, {len(results) - passed} failed")
