"""`kobe dagster prune`: Dagster's own storage (`DAGSTER_HOME`, by default `state/dagster/`)."""

from __future__ import annotations

import click


@click.group()
def dagster() -> None:
    """Dagster's own storage (runs and their event logs under DAGSTER_HOME)."""


@dagster.command()
@click.option("--older-than-days", type=click.IntRange(min=0), default=30, show_default=True,
              help="Delete finished runs created more than this many days ago.")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
def prune(older_than_days: int, dry_run: bool) -> None:
    """Delete old finished runs and their event logs, keeping every run that holds an asset's
    latest materialization (what the UI's asset pages show)."""
    import datetime as dt

    import dagster as dg

    from kobe_pipelines import settings
    from kobe_pipelines.defs.storage import prune_runs

    home = settings.dagster_home()
    if not (home / "dagster.yaml").exists() and not (home / "history").exists():
        raise click.ClickException(f"no Dagster storage at {home} (set DAGSTER_HOME, or run `kobe demo` first)")
    before = _folder_kb(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        report = prune_runs(instance, dt.timedelta(days=older_than_days), dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(report.deleted)} run(s) older than {older_than_days} days; kept "
               f"{len(report.kept_for_assets)} old run(s) holding an asset's latest materialization")
    if not dry_run:
        click.echo(f"{home}: {before:,} KB -> {_folder_kb(home):,} KB")


def _folder_kb(folder) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) // 1024
