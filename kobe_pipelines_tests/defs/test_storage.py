"""Pruning Dagster's own storage: old finished runs go, the runs behind what the UI shows stay."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
from click.testing import CliRunner

from kobe_pipelines.cli import main
from kobe_pipelines.defs.storage import prune_runs


@dg.asset
def alpha() -> int:
    return 1


@dg.asset
def beta() -> int:
    return 2


class Boom(Exception):
    pass


@dg.asset
def failing() -> int:
    raise Boom("this run fails")


def _runs(instance: dg.DagsterInstance) -> dict[str, str]:
    """Four runs: alpha twice, then beta, then a failed one; names -> run ids."""
    ids = {}
    for name, assets in (("alpha_1", [alpha]), ("alpha_2", [alpha]), ("beta", [beta]), ("failed", [failing])):
        ids[name] = dg.materialize(assets, instance=instance, raise_on_error=False).run_id
    return ids


def test_prune_runs_when_all_runs_are_old_then_only_those_behind_no_latest_materialization_are_deleted():
    with dg.instance_for_test() as instance:
        ids = _runs(instance)
        tomorrow = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
        report = prune_runs(instance, dt.timedelta(hours=12), now=tomorrow)
        assert set(report.deleted) == {ids["alpha_1"], ids["failed"]}
        assert set(report.kept_for_assets) == {ids["alpha_2"], ids["beta"]}
        assert {run.run_id for run in instance.get_runs()} == {ids["alpha_2"], ids["beta"]}
        assert instance.get_records_for_run(ids["alpha_1"]).records == []  # its event log is gone too
        assert instance.get_latest_materialization_event(dg.AssetKey("alpha")).run_id == ids["alpha_2"]


def test_prune_runs_when_runs_are_younger_than_the_cutoff_then_nothing_is_deleted():
    with dg.instance_for_test() as instance:
        ids = _runs(instance)
        tomorrow = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
        report = prune_runs(instance, dt.timedelta(days=2), now=tomorrow)
        assert report.deleted == () and report.kept_for_assets == ()
        assert {run.run_id for run in instance.get_runs()} == set(ids.values())


def test_prune_runs_when_dry_run_then_it_names_the_runs_and_deletes_none():
    with dg.instance_for_test() as instance:
        ids = _runs(instance)
        report = prune_runs(instance, dt.timedelta(0), now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1), dry_run=True)
        assert set(report.deleted) == {ids["alpha_1"], ids["failed"]}
        assert len(instance.get_runs()) == 4


def test_kobe_dagster_prune_when_no_dagster_storage_then_it_says_where_it_looked(tmp_path):
    result = CliRunner().invoke(main, ["dagster", "prune"], env={"DAGSTER_HOME": str(tmp_path / "nowhere")})
    assert result.exit_code == 1
    assert f"no Dagster storage at {tmp_path / 'nowhere'}" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_kobe_dagster_prune_when_old_runs_then_they_are_deleted_and_the_sizes_printed(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        ids = _runs(instance)
        # what a run launched by the daemon leaves beside its event log: its captured stderr
        captured = {name: Path(instance.compute_log_manager.get_captured_local_path([ids[name], "compute_logs", "step"], "err"))
                    for name in ("alpha_1", "alpha_2")}
        for path in captured.values():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("captured output")
    result = CliRunner().invoke(main, ["dagster", "prune", "--older-than-days", "0"], env={"DAGSTER_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert "deleted 2 run(s) older than 0 days; kept 2 old run(s)" in result.output
    assert f"{home}: " in result.output and " KB -> " in result.output
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert {run.run_id for run in instance.get_runs()} == {ids["alpha_2"], ids["beta"]}
    assert not captured["alpha_1"].exists() and captured["alpha_2"].read_text() == "captured output"
