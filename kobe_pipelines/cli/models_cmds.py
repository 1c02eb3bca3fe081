"""`kobe models ...`: list registered models, promote a version, roll production back.

The store is `--tracking-uri`, else `$MLFLOW_TRACKING_URI`, else the SQLite database under the
state folder. Promoting or rolling back also pins, in the lake, the lake version the new
production version learned from, so retention never deletes a production model's data.
"""

from __future__ import annotations

import sys
import textwrap
from typing import TYPE_CHECKING

import click

from kobe_pipelines.cli.tables import MAX_WIDTH, Column
from kobe_pipelines.errors import KobeError

if TYPE_CHECKING:
    from kobe_pipelines.ml.registry import VersionSummary

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
    """Every registered version and the comparison that decided its promotion: its rank IC and the
    champion's on the same window. A line above each model's table says which version production is
    and what put it there."""
    from kobe_pipelines.cli.tables import echo_table
    from kobe_pipelines.ml.registry import PRODUCTION

    registry = _registry(tracking_uri)
    try:
        rows = registry.list()
        histories = {name: registry.history(name) for name in dict.fromkeys(r.name for r in rows)}
    except KobeError as exc:
        _fail(exc)
    if not rows:
        click.echo("no registered models yet: run `kobe demo` or materialize the model assets")
        return
    for number, (name, history) in enumerate(histories.items()):
        versions = [r for r in rows if r.name == name]
        production = next((r.version for r in versions if PRODUCTION in r.aliases), None)
        if number:
            click.echo("")
        click.echo(textwrap.fill(production_line(name, production, history), width=MAX_WIDTH, subsequent_indent="  "))
        echo_table([version_row(r) for r in versions], VERSION_COLUMNS, detail="detail")


VERSION_COLUMNS = (
    Column("version", "version"), Column("aliases", "aliases"), Column("window", "window", whole=True),
    Column("rank IC", "rank_ic", "number"), Column("champion", "champion"),
    Column("champion rank IC", "champion_rank_ic", "number"), Column("decision", "decision"),
)  # under each row: the lake version it learned from, when it was registered, and the decision's reason


def version_row(v: VersionSummary) -> dict[str, object]:
    """One version as a row of `kobe models list`: the automatic decision's comparison (both scores
    on the candidate's evaluation window), or none recorded."""
    learned = f"learned from lake version {v.lake_version_id or '(not recorded)'}; registered {_utc(v.created)}"
    row: dict[str, object] = {"version": v.version, "aliases": ", ".join(v.aliases)}
    record = v.promotion
    if record is None:
        own = "" if v.eval_rank_ic is None else f"; rank IC {v.eval_rank_ic:.4f} on its own evaluation window"
        return {**row, "detail": f"{learned}; no automatic promotion decision recorded{own}"}
    champion = f"v{record.champion_version}" if record.champion_version else "none"
    return {**row, "window": record.window, "rank_ic": record.candidate_rank_ic, "champion": champion,
            "champion_rank_ic": record.champion_rank_ic, "decision": record.decision,
            "detail": f"{learned}; {record.reason}"}


def production_line(name: str, production: str | None, history: list[dict]) -> str:
    """Which version `production` points at, and the move that put it there (from the history)."""
    if production is None:
        return f"{name}: no production version"
    last = history[-1] if history else None
    if last is None or str(last.get("version")) != production:
        return f"{name}: production is v{production} (set outside kobe: no production history entry)"
    return f"{name}: production is v{production} ({last.get('action')} {_utc(last.get('at'))}: {last.get('reason')})"


def _utc(stamp: object) -> str:
    """An ISO 8601 UTC stamp as "YYYY-MM-DD HH:MM:SS UTC"."""
    text = str(stamp or "")
    return text.replace("T", " ").removesuffix("+00:00") + " UTC" if text else "(no time recorded)"


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
