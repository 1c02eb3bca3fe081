"""Dagster's own storage: pruning the runs of past nights.

Every run leaves its event log in `DAGSTER_HOME` (a few hundred KB a night, see the README), and a
run launched by the daemon or `dagster job execute` its captured stdout and stderr too. The runs
older than a cut-off are deleted with their event logs and captured output, except the runs that hold the latest
materialization of an asset (what the UI's asset pages show: the sessions the lake holds, the
production model's metrics, the last signals) and runs that have not finished.
Schedule and sensor ticks are pruned by Dagster itself (`retention` in `dagster.yaml`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dagster as dg

FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


@dataclass(frozen=True)
class PruneReport:
    deleted: tuple[str, ...]  # run ids
    kept_for_assets: tuple[str, ...]  # old runs kept: they hold an asset's latest materialization


def runs_holding_latest_materializations(instance: dg.DagsterInstance) -> set[str]:
    """Run ids of the latest materialization of every asset the instance knows."""
    keep = set()
    for key in instance.all_asset_keys():
        event = instance.get_latest_materialization_event(key)
        if event is not None:
            keep.add(event.run_id)
    return keep


def prune_runs(instance: dg.DagsterInstance, older_than: dt.timedelta, now: dt.datetime | None = None,
               dry_run: bool = False) -> PruneReport:
    """Deletes the finished runs created more than `older_than` before `now` (with their event
    logs and captured output), keeping those that hold an asset's latest materialization."""
    if older_than < dt.timedelta(0):
        raise ValueError(f"older_than must not be negative, got {older_than}")
    cutoff = (now or dt.datetime.now(dt.timezone.utc)) - older_than
    old = instance.get_runs(filters=dg.RunsFilter(statuses=list(FINISHED), created_before=cutoff))
    keep = runs_holding_latest_materializations(instance)
    deleted, kept = [], []
    for run in old:
        if run.run_id in keep:
            kept.append(run.run_id)
            continue
        if not dry_run:
            instance.delete_run(run.run_id)
            # Dagster leaves a deleted run's captured output (`storage/<run id>/compute_logs`)
            instance.compute_log_manager.delete_logs(prefix=[run.run_id])
        deleted.append(run.run_id)
    return PruneReport(tuple(deleted), tuple(kept))
