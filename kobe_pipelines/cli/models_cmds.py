"""`kobe models ...`: list registered models, promote a version, roll production back.

The store is `--tracking-uri`, else `$MLFLOW_TRACKING_URI`, else the SQLite database under the
state folder. Promoting or rolling back also pins, in the lake, the lake version the new
production version learned from, so retention never deletes a production model's data.
"""

from __future__ import annotations

import sys

import click

from kobe_pipelines.errors import KobeError

tracking_option = click.option("--tracking-uri", default=None,
                               help="MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///<state>/mlflow/mlflow.db).")
lake_option = click.option("--lake", "lake_path", type=click.Path(file_okay=False), default=None,
                           help="Lake folder whose version gets pinned (default: $KOBE_LAKE_DIR or ./data_lake).")


def _registry(tracking_uri: str | None):
    from kobe_pipelines.ml.registry import ModelRegistry

    return ModelRegistry(tracking_uri)


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


def _pin_lake_version(registry, name: str, lake_path: str | None) -> None:
    from kobe_pipelines.lake import Lake, LakeVersionNotFound

    mv = registry.version_by_alias(name, "production")
    lake_version = registry.production_lake_version(name)
    if not lake_version:
        click.echo(f"warning: {name} v{mv.version} records no lake version; nothing pinned", err=True)
        return
    try:
        Lake(lake_path).pin(lake_version, f"production model {name} v{mv.version}")
    except LakeVersionNotFound:
        click.echo(f"warning: lake version {lake_version} of {name} v{mv.version} is not in the lake; nothing pinned", err=True)
        return
    click.echo(f"pinned lake version {lake_version}")


@click.group()
def models() -> None:
    """Registered models (MLflow): kobe-lstm and kobe-ensemble, and their production alias."""


@models.command("list")
@tracking_option
def list_(tracking_uri: str | None) -> None:
    """Every registered version, with its aliases, lake version and evaluation rank IC."""
    try:
        rows = _registry(tracking_uri).list()
    except KobeError as exc:
        _fail(exc)
    if not rows:
        click.echo("no registered models yet: run `kobe demo` or materialize the model assets")
        return
    from tabulate import tabulate

    table = [(r.name, r.version, ",".join(r.aliases), r.lake_version_id or "",
              "" if r.eval_rank_ic is None else f"{r.eval_rank_ic:.4f}", r.promotion or "", r.created) for r in rows]
    click.echo(tabulate(table, headers=["model", "version", "aliases", "lake version", "eval rank IC", "auto decision", "created (UTC)"]))


@models.command()
@click.argument("name")
@click.argument("version")
@click.option("--reason", default="manual", show_default=True, help="Recorded in the production history.")
@tracking_option
@lake_option
def promote(name: str, version: str, reason: str, tracking_uri: str | None, lake_path: str | None) -> None:
    """Point NAME's production alias at VERSION (a human decision: no score comparison)."""
    registry = _registry(tracking_uri)
    try:
        registry.promote(name, version, reason=reason)
    except KobeError as exc:
        _fail(exc)
    click.echo(f"{name}: production -> v{version}")
    _pin_lake_version(registry, name, lake_path)


@models.command()
@click.argument("name")
@click.option("--reason", default="manual rollback", show_default=True, help="Recorded in the production history.")
@tracking_option
@lake_option
def rollback(name: str, reason: str, tracking_uri: str | None, lake_path: str | None) -> None:
    """Point NAME's production alias back at the version it had before the last promotion."""
    registry = _registry(tracking_uri)
    try:
        version = registry.rollback(name, reason=reason)
    except KobeError as exc:
        _fail(exc)
    click.echo(f"{name}: production rolled back to v{version}")
    _pin_lake_version(registry, name, lake_path)
