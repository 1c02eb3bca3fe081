"""A freeze killed (SIGKILL, a real process) at any step of a publish leaves a lake whose readers
see one consistent version; the next writer removes what the crash left and repairs the catalog."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import duckdb
import pytest
from click.testing import CliRunner

from kobe_pipelines.cli import main
from kobe_pipelines.lake import Lake

SIM = "SimConfig(seed=11, n_symbols=12, start='2020-01-02', end='2021-06-30')"
BEFORE_PUBLICATION = ["start", "raw_written", "derived_written", "manifest_written", "catalog_written", "version_renamed"]
# the version folder is in place but CURRENT still names the previous one: a complete version, not current
AFTER_PUBLICATION = ["current_switched", "catalog_rebuilt"]


def run_freeze(lake_dir, end: str, crash_at: str | None) -> subprocess.CompletedProcess:
    script = textwrap.dedent(
        f"""
        import os, signal
        from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
        from kobe_pipelines.lake import publish, store
        def checkpoint(step):
            if step == {crash_at!r}:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: a kill -9 or a power cut
        publish.checkpoint = checkpoint
        sim = SimulatedProvider({SIM})
        s, e = '2020-01-02', {end!r}
        store.Lake({str(lake_dir)!r}).freeze(sim.daily_bars(s, e), sim.splits(s, e), sim.dividends(s, e), provider='simulated')
        """
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def catalog_version(lake: Lake) -> str:
    """The version catalog.duckdb's plain views show (read as any DuckDB user would)."""
    with duckdb.connect(str(lake.catalog_path), read_only=True) as con:
        return con.execute("SELECT version_id FROM lake_versions WHERE is_current").fetchone()[0]


def verify_cli(lake: Lake):
    return CliRunner().invoke(main, ["lake", "verify", "--lake", str(lake.root)])


@pytest.mark.slow
@pytest.mark.parametrize("step", BEFORE_PUBLICATION + AFTER_PUBLICATION)
def test_freeze_when_killed_at_step_then_readers_see_one_version_and_the_next_freeze_repairs(tmp_path, step):
    lake_dir = tmp_path / "lake"
    assert run_freeze(lake_dir, "2021-06-29", crash_at=None).returncode == 0
    lake = Lake(lake_dir)
    previous = lake.current_version_id()
    rows_before = lake.query("SELECT count(*) AS n FROM bars")["n"].iloc[0]

    assert run_freeze(lake_dir, "2021-06-30", crash_at=step).returncode == -signal.SIGKILL

    lake = Lake(lake_dir)
    listed = [m.version_id for m in lake.versions()]
    if step in BEFORE_PUBLICATION:
        assert lake.current_version_id() == previous
        assert listed[0] == previous and len(listed) == (2 if step == "version_renamed" else 1)  # nothing partial
        assert lake.query("SELECT count(*) AS n FROM bars")["n"].iloc[0] == rows_before
        assert catalog_version(lake) == previous
        assert verify_cli(lake).exit_code == 0
    else:
        current = lake.current_version_id()
        assert current != previous and listed == [previous, current]
        # readers of the lake read through CURRENT
        assert lake.query("SELECT max(date)::VARCHAR AS d FROM bars")["d"].iloc[0] == "2021-06-30"
        if step == "current_switched":  # the catalog was not renamed yet: it disagrees, and verify says so
            assert catalog_version(lake) == previous
            result = verify_cli(lake)
            assert result.exit_code == 1 and f"shows version {previous} but CURRENT names {current}" in result.output
        else:
            assert catalog_version(lake) == current and verify_cli(lake).exit_code == 0
    for version_id in listed:  # whatever is listed is complete
        assert not [p for p in lake.verify(version_id) if not p.startswith("lake catalog")]

    # the next freeze of the same inputs (a new version, or "unchanged") repairs what the crash left
    assert run_freeze(lake_dir, "2021-06-30", crash_at=None).returncode == 0
    lake = Lake(lake_dir)
    assert lake.query("SELECT max(date)::VARCHAR AS d FROM bars")["d"].iloc[0] == "2021-06-30"
    assert catalog_version(lake) == lake.current_version_id()
    assert verify_cli(lake).exit_code == 0
    assert not [p for p in lake.root.rglob("*") if p.name.endswith((".tmp", ".wal"))]
    assert not list(lake.versions_dir.glob(".t*"))
    referenced = {e.path for m in lake.versions() for e in m.files}
    assert {p.relative_to(lake.root).as_posix() for p in (lake.root / "raw").rglob("*.parquet")} <= referenced


@pytest.mark.slow
def test_freeze_when_killed_after_current_switched_and_run_again_unchanged_then_the_catalog_is_repaired(tmp_path):
    lake_dir = tmp_path / "lake"
    assert run_freeze(lake_dir, "2021-06-30", crash_at="current_switched").returncode == -signal.SIGKILL
    lake = Lake(lake_dir)
    current = lake.current_version_id()
    assert lake.catalog_problems() == [f"catalog.duckdb is missing or unreadable (CURRENT names {current})"]
    assert [p.name for p in lake.root.glob(".catalog.duckdb.*.tmp")]  # the renamed-to-be catalog, left behind
    again = run_freeze(lake_dir, "2021-06-30", crash_at=None)  # identical inputs: no new version ...
    assert again.returncode == 0, again.stderr
    lake = Lake(lake_dir)
    assert [m.version_id for m in lake.versions()] == [current]
    assert catalog_version(lake) == current and lake.catalog_problems() == []  # ... but the catalog is repaired
    assert not [p for p in lake.root.iterdir() if p.name.endswith((".tmp", ".wal"))]


def run_compaction(lake_dir, crash_at: str) -> subprocess.CompletedProcess:
    script = textwrap.dedent(
        f"""
        import datetime as dt, os, signal
        from kobe_pipelines.lake import publish, store
        def checkpoint(step):
            if step == {crash_at!r}:
                os.kill(os.getpid(), signal.SIGKILL)
        publish.checkpoint = checkpoint
        store.Lake({str(lake_dir)!r}).compact(as_of=dt.date(2022, 1, 3))
        """
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("step", ["compacted", "manifest_written", "current_switched"])
def test_compact_when_killed_at_step_then_one_version_with_the_same_bars_and_the_next_writer_repairs(tmp_path, step):
    import datetime as dt

    from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider

    sim = SimulatedProvider(SimConfig(seed=11, n_symbols=12, start="2020-01-02", end="2021-06-30"))
    lake = Lake(tmp_path / "lake")
    s, e = "2020-01-02", "2021-06-30"
    lake.freeze(sim.daily_bars(s, e), sim.splits(s, e), sim.dividends(s, e), provider="simulated", as_of=dt.date(2021, 6, 30))
    previous = lake.current_version_id()
    sql = "SELECT * FROM bars ORDER BY symbol, date"
    before = lake.query(sql)

    assert run_compaction(tmp_path / "lake", step).returncode == -signal.SIGKILL

    lake = Lake(tmp_path / "lake")
    folders = sorted(e.path.split("/")[2] for e in lake.current_version().files_with_role("raw_bars"))
    if step == "current_switched":
        assert lake.current_version_id() != previous and folders == ["through=2021"]
    else:
        assert lake.current_version_id() == previous and folders == ["through=2020", "year=2021"]
    assert lake.query(sql).equals(before)
    lake.repair()
    assert verify_cli(lake).exit_code == 0 and catalog_version(lake) == lake.current_version_id()
