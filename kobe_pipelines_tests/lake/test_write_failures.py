"""A full disk, a file size limit or a read-only folder: one line naming the folder, exit 1, and a
lake that stays consistent (the previous version current, nothing half-written left visible)."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from kobe_pipelines.cli import main
from kobe_pipelines.lake import Lake, catalog, store
from kobe_pipelines_tests.lake.conftest import tiny_market


@pytest.fixture()
def source(tmp_path):
    """A files-provider folder: the tiny market less its last session (see `add_last_session`)."""
    folder = tmp_path / "src"
    folder.mkdir()
    bars, splits, dividends = tiny_market()
    bars.loc[bars["date"] < "2024-01-05"].assign(date=lambda f: f["date"].dt.strftime("%Y-%m-%d")).to_csv(
        folder / "bars.csv", index=False)
    dividends.to_csv(folder / "dividends.csv", index=False)
    return folder


def add_last_session(source) -> None:
    bars, splits, _ = tiny_market()
    bars.assign(date=bars["date"].dt.strftime("%Y-%m-%d")).to_csv(source / "bars.csv", index=False)
    splits.to_csv(source / "splits.csv", index=False)


def freeze(source, lake_dir):
    return CliRunner().invoke(main, ["lake", "freeze", "--provider", "files", "--source", str(source), "--lake", str(lake_dir)])


def files_of(lake_dir) -> set[str]:
    return {p.relative_to(lake_dir).as_posix() for p in lake_dir.rglob("*") if p.is_file() and p.name != ".lock"}


def assert_consistent(lake: Lake, current: str) -> None:
    """`current` is current, verifies, the catalog shows it, and nothing temporary is visible."""
    assert lake.current_version_id() == current
    assert [m.version_id for m in lake.versions()] == [current]
    assert lake.verify() == []
    assert not [p for p in lake.root.rglob("*") if p.name.endswith((".tmp", ".wal")) or p.name.startswith(".tmp-")]


def one_line_error(result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    for word in words:
        assert word in lines[0], result.output


def test_freeze_when_the_disk_fills_while_the_catalog_is_written_then_nothing_is_published(tmp_path, source, monkeypatch):
    lake_dir = tmp_path / "lake"
    assert freeze(source, lake_dir).exit_code == 0
    first = Lake(lake_dir).current_version_id()
    add_last_session(source)
    real = catalog._write

    def disk_full(root, path, tmp, *args, **kwargs):
        real(root, path, tmp, *args, **kwargs)  # the temporary catalog is written, then the disk is full
        raise duckdb.IOException(f'Could not write file "{tmp}": No space left on device')

    monkeypatch.setattr(catalog, "_write", disk_full)
    result = freeze(source, lake_dir)
    one_line_error(result, str(lake_dir.resolve()), "no space left on device", f"nothing was published; {first} stays current")
    monkeypatch.undo()
    assert_consistent(Lake(lake_dir), first)


def test_freeze_when_the_disk_fills_while_a_data_file_is_written_then_no_new_file_is_left(tmp_path, source, monkeypatch):
    lake_dir = tmp_path / "lake"
    assert freeze(source, lake_dir).exit_code == 0
    first = Lake(lake_dir).current_version_id()
    before = files_of(lake_dir)
    add_last_session(source)
    real = pq.write_table

    def disk_full(table, where, *args, **kwargs):
        if "factors" in str(where):
            raise OSError(errno.ENOSPC, "No space left on device", str(where))
        return real(table, where, *args, **kwargs)

    monkeypatch.setattr(store.pq, "write_table", disk_full)
    result = freeze(source, lake_dir)
    one_line_error(result, "no space left on device", f"{first} stays current")
    monkeypatch.undo()
    assert files_of(lake_dir) - before <= {".hash_cache.json"}
    assert_consistent(Lake(lake_dir), first)


def _limited(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
@pytest.mark.parametrize("limit", [600, 2_000, 6_000])
def test_freeze_when_the_kernel_refuses_a_write_at_any_size_then_one_line_and_a_consistent_lake(tmp_path, source, limit):
    # RLIMIT_FSIZE makes the kernel refuse writes past `limit` bytes in each file: each limit
    # stops this freeze at another of its files (the raw and derived files, the catalog)
    lake_dir = tmp_path / "lake"
    assert freeze(source, lake_dir).exit_code == 0
    first = Lake(lake_dir).current_version_id()
    add_last_session(source)
    kobe = "import sys; from kobe_pipelines.cli import main; main(sys.argv[1:])"
    run = subprocess.run([sys.executable, "-c", kobe, "lake", "freeze", "--provider", "files",
                          "--source", str(source), "--lake", str(lake_dir)],
                         capture_output=True, text=True, timeout=120, preexec_fn=_limited(limit))
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot") and "ulimit" in lines[0], run.stderr
    lake = Lake(lake_dir)
    assert lake.current_version_id() == first and lake.verify() == []
    assert freeze(source, lake_dir).exit_code == 0  # with room again, the same freeze publishes
    assert Lake(lake_dir).query("SELECT max(date)::VARCHAR AS d FROM bars")["d"].iloc[0] == "2024-01-05"


def test_freeze_when_the_lake_folder_is_read_only_then_one_line_naming_it_and_queries_still_work(tmp_path, source, monkeypatch):
    lake_dir = tmp_path / "lake"
    assert freeze(source, lake_dir).exit_code == 0
    first = Lake(lake_dir).current_version_id()
    add_last_session(source)

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(store, "open", read_only, raising=False)  # the lake's lock file cannot be opened for writing
    monkeypatch.setattr(os, "mkdir", read_only)
    result = freeze(source, lake_dir)
    one_line_error(result, f"the lake at {lake_dir.resolve()}", "read-only file system", "nothing was changed")
    pinned = CliRunner().invoke(main, ["lake", "pin", first, "--reason", "audit", "--lake", str(lake_dir)])
    one_line_error(pinned, "read-only file system")
    query = CliRunner().invoke(main, ["lake", "query", "--lake", str(lake_dir), "SELECT count(*) AS n FROM bars"])
    assert query.exit_code == 0 and query.output == "n\n6\n"
    monkeypatch.undo()
    assert_consistent(Lake(lake_dir), first)
