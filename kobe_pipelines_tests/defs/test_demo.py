"""`kobe demo`: what it plans on fresh and existing state, and that a rerun leaves production alone."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kobe_pipelines import market_calendar
from kobe_pipelines.defs.demo import STEPS, plan_demo

SESSIONS = [d.date() for d in market_calendar.sessions("2024-01-02", "2024-03-28")]


def test_plan_demo_when_state_is_fresh_then_history_training_and_the_last_sessions_replayed():
    plan = plan_demo(SESSIONS, None, None, replay=5)
    assert (str(plan.history.first), str(plan.history.last)) == ("2024-01-02", "2024-03-21")
    assert plan.train and plan.replay == ("2024-03-22", "2024-03-25", "2024-03-26", "2024-03-27", "2024-03-28")
    assert plan.steps == STEPS["history"] + STEPS["training"] + 5 * (STEPS["refreeze"] + STEPS["trading"]) + STEPS["trading"]


def test_plan_demo_when_the_lake_is_up_to_date_and_a_model_in_production_then_nothing_to_do():
    plan = plan_demo(SESSIONS, dt.date(2024, 3, 28), "3")
    assert plan.nothing_to_do
    assert any("keep the production model kobe-ensemble v3 (pass --retrain" in note for note in plan.notes)


def test_plan_demo_when_two_sessions_are_new_then_they_are_replayed_and_production_is_kept():
    plan = plan_demo(SESSIONS, dt.date(2024, 3, 26), "3")
    assert plan.history is None and not plan.train and plan.replay == ("2024-03-27", "2024-03-28")


def test_plan_demo_when_retrain_is_asked_then_training_runs_though_nothing_is_new():
    plan = plan_demo(SESSIONS, dt.date(2024, 3, 28), "3", retrain=True)
    assert plan.train and plan.history is None and plan.replay == ()


def test_plan_demo_when_many_sessions_are_new_then_all_but_the_last_few_are_ingested_in_one_run():
    plan = plan_demo(SESSIONS, dt.date(2024, 2, 29), "3", replay=2)
    assert (str(plan.history.first), str(plan.history.last)) == ("2024-03-01", "2024-03-26")
    assert plan.replay == ("2024-03-27", "2024-03-28")


def _kobe_demo(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KOBE_SIM_SYMBOLS": "8", "KOBE_HISTORY_START": "2022-01-03", "KOBE_SIM_END": "2024-06-28",
           "COLUMNS": "100"}
    for name in ("KOBE_LAKE_DIR", "KOBE_STATE_DIR", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)  # the demo's own defaults, under cwd
    kobe = Path(sys.executable).with_name("kobe")
    return subprocess.run([str(kobe), "demo", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_demo_when_run_again_on_the_same_state_then_nothing_changes_and_production_stays(tmp_path):
    from kobe_pipelines.ml.registry import ModelRegistry

    first = _kobe_demo(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'state' / 'mlflow' / 'mlflow.db'}")
    production = str(registry.version_by_alias("kobe-ensemble").version)
    output = first.stdout + first.stderr
    # library chatter never breaks into the progress bar, and the MLflow line is printed
    assert "INFO mlflow" not in output and "BetaWarning" not in output and "Creating initial MLflow" not in output
    assert "mlflow ui --backend-store-uri sqlite:///" in output and "Model training" in output

    second = _kobe_demo(tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing new" in second.stdout and "Nothing changed." in second.stdout
    assert "keep the production model kobe-ensemble v" in second.stdout
    assert str(registry.version_by_alias("kobe-ensemble").version) == production
    assert [v.version for v in registry.list() if v.name == "kobe-ensemble"] == [production]
