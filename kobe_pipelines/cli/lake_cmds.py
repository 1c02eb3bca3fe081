"""`kobe lake ...`: freeze, list, query, verify and pin lake versions."""

from __future__ import annotations

import sys

import click
import pandas as pd

from kobe_pipelines import market_calendar
from kobe_pipelines.cli.tables import Column
from kobe_pipelines.data.schema import DIVIDEND_CONVENTIONS
from kobe_pipelines.errors import KobeError

lake_option = click.option("--lake", "lake_path", type=click.Path(file_okay=False), default=None,
                           help="Lake folder (default: $KOBE_LAKE_DIR or ./data_lake).")


def _open(lake_path: str | None):
    from kobe_pipelines.lake import Lake
    from kobe_pipelines.settings import LakeSettings

    return Lake(lake_path, retention=LakeSettings.from_env().retention)


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


@click.group()
def lake() -> None:
    """The versioned data lake (frozen, adjusted Parquet snapshots indexed by DuckDB)."""


@lake.command()
@click.option("--provider", type=click.Choice(["files", "simulated", "polygon"]), default="files", show_default=True)
@click.option("--source", type=click.Path(exists=True, file_okay=False), help="Folder with bars/splits/dividends (.csv or .parquet) for --provider files.")
@click.option("--start", default=None,
              help="First session to ingest (default: everything the source has; otherwise $KOBE_HISTORY_START, 2019-01-02).")
@click.option("--end", default=None, help="Last session to ingest (default: the last completed XNYS session).")
@click.option("--dividend-convention", type=click.Choice(DIVIDEND_CONVENTIONS), default=None,
              help="crsp or quandl (default: $KOBE_DIVIDEND_CONVENTION, else crsp).")
@lake_option
def freeze(provider: str, source: str | None, start: str | None, end: str | None, dividend_convention: str | None,
           lake_path: str | None) -> None:
    """Ingest bars and corporate actions and publish a new lake version (atomic). The simulated
    market and Polygon take their settings from the environment, as the Dagster assets do."""
    try:
        from kobe_pipelines.settings import LakeSettings, MarketDataSettings

        settings = MarketDataSettings.from_env()
        dividend_convention = dividend_convention or LakeSettings.from_env().dividend_convention
        source_provider = _provider(settings, provider, source)
        first = start or ("1900-01-01" if provider == "files" else settings.history_start)
        # your own files are read to their end: a bar dated after the last completed session is
        # then refused by name rather than left out unseen
        last = end or (None if provider == "files" else str(market_calendar.last_completed_session().date()))
        from kobe_pipelines.data.providers.base import bar_batches_for_freeze

        bars = bar_batches_for_freeze(source_provider, first, last)
        result = _open(lake_path).freeze(
            bars,
            source_provider.splits(first, last),
            source_provider.dividends(first, last),
            provider=provider,
            dividend_convention=dividend_convention,
            notes={"source": source} if source else None,
        )
    except (KobeError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    m = result.version
    state = "new version" if result.created else "unchanged: inputs match an existing version"
    aside = result.actions_set_aside
    kept = f"; {aside.total} actions of {aside.symbols} symbols without bars set aside" if aside.total else ""
    click.echo(f"{m.version_id} ({state}); {m.row_counts.get('bars', 0)} bars {m.start_date}..{m.end_date}; "
               f"content hash {m.content_hash[:16]}{kept}")


def _provider(settings, name: str, source: str | None):
    from kobe_pipelines.data.providers.factory import build_provider

    if name == "files" and not source:
        raise click.UsageError("--provider files needs --source DIR")
    return build_provider(settings.replace(provider=name, files_dir=source or settings.files_dir))


@lake.command()
@lake_option
def versions(lake_path: str | None) -> None:
    """List lake versions, oldest first; * marks the current one. A version id ends with the first
    8 hex digits of its content hash."""
    from kobe_pipelines.cli.tables import echo_table
    from kobe_pipelines.lake import catalog

    try:
        store = _open(lake_path)
        frame = catalog.versions_frame(store.versions(), store.current_version_id(), store.pins())
    except KobeError as exc:
        _fail(exc)
    if frame.empty:
        click.echo("no lake versions yet: run `kobe demo` or `kobe lake freeze`")
        return
    rows = [{**row, "current": "*" if row["is_current"] else ""} for row in frame.to_dict("records")]
    echo_table(rows, VERSION_COLUMNS)


VERSION_COLUMNS = (
    Column("", "current"), Column("lake version", "version_id", whole=True), Column("bars", "bars", "int"),
    Column("first session", "start_date"), Column("last session", "end_date"),
    Column("dividends", "dividend_convention"), Column("pinned because", "pinned_reason"),
)


@lake.command()
@click.argument("sql")
@click.option("--version", "version_id", default=None, help="Pin a lake version by id (default: the current one).")
@lake_option
def query(sql: str, version_id: str | None, lake_path: str | None) -> None:
    """Run a read-only SELECT over the views bars, bars_split_adjusted, bars_raw, lake_versions and
    catalog."<version id>".bars; print CSV. Anything that would write, attach or load is refused."""
    try:
        frame: pd.DataFrame = _open(lake_path).query(sql, version_id)
    except KobeError as exc:
        _fail(exc)
    click.echo(frame.to_csv(index=False), nl=False)


@lake.command()
@click.argument("version_id", required=False)
@click.option("--all", "every", is_flag=True, help="Verify every retained version, not one.")
@lake_option
def verify(version_id: str | None, every: bool, lake_path: str | None) -> None:
    """Re-hash every file of a version (default: current) against its manifest, and check that
    catalog.duckdb shows the current version."""
    try:
        store = _open(lake_path)
        manifests = store.versions() if every else [store.version(version_id) if version_id else store.current_version()]
        problems = [problem for manifest in manifests for problem in store.verify(manifest.version_id)]
    except KobeError as exc:
        _fail(exc)
    if problems:
        for problem in problems:
            click.echo(f"FAIL {problem}", err=True)
        sys.exit(1)
    for manifest in manifests:
        click.echo(f"OK {manifest.version_id}: {len(manifest.files)} files match their sha256")


@lake.command()
@lake_option
def repair(lake_path: str | None) -> None:
    """Remove what an interrupted freeze left and rewrite a catalog that disagrees with CURRENT."""
    try:
        problems = _open(lake_path).repair()
    except KobeError as exc:
        _fail(exc)
    for problem in problems:
        click.echo(f"repaired: {problem}")
    click.echo("OK: the catalog shows the current version")


@lake.command()
@lake_option
def compact(lake_path: str | None) -> None:
    """Merge the closed years' raw files into new history files (a new version, the same bars).

    The first freeze after a year closes does this by itself; run it after bars were added to a
    closed year, to read each symbol's history from one file again."""
    try:
        version = _open(lake_path).compact()
    except KobeError as exc:
        _fail(exc)
    click.echo(f"compacted into version {version.version_id}" if version is not None else "nothing to compact")


@lake.command()
@click.argument("version_id")
@click.option("--reason", required=True, help="Why this version must be kept (shown in `kobe lake versions`).")
@lake_option
def pin(version_id: str, reason: str, lake_path: str | None) -> None:
    """Keep a version regardless of retention."""
    try:
        _open(lake_path).pin(version_id, reason)
    except KobeError as exc:
        _fail(exc)
    click.echo(f"pinned {version_id}")


@lake.command()
@click.argument("version_id")
@lake_option
def unpin(version_id: str, lake_path: str | None) -> None:
    """Let retention delete a version again."""
    try:
        _open(lake_path).unpin(version_id)
    except KobeError as exc:
        _fail(exc)
    click.echo(f"unpinned {version_id}")
