"""The catalog file: the retained versions' schemas carried over from the previous catalog, and
everything a from-scratch rebuild would write."""

from __future__ import annotations

import shutil

import duckdb

from kobe_pipelines.lake import Lake, catalog

from .conftest import sim_inputs


def _objects(path) -> set[tuple[str, str, str]]:
    """(schema, view, its SQL) of every view, and the lake_versions rows, of a catalog file."""
    with duckdb.connect(str(path), read_only=True) as con:
        views = {(s, v, sql) for s, v, sql in con.execute(
            "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall()}
        rows = {("lake_versions", str(row), "") for row in con.execute(
            "SELECT version_id, is_current, pinned_reason FROM lake_versions").fetchall()}
    return views | rows


def _scratch(lake: Lake, path) -> None:
    catalog.rebuild(lake.root, path, lake.versions(), lake.current_version_id(), lake.pins())


def _freezes(lake: Lake, sim, ends: list[str]) -> None:
    for end in ends:
        lake.freeze(*sim_inputs(sim, end=end), provider="simulated")


def test_catalog_when_versions_added_dropped_and_pinned_then_same_as_a_rebuild_from_scratch(tmp_path, sim):
    lake = Lake(tmp_path / "lake", retention=2)
    _freezes(lake, sim, ["2021-06-24", "2021-06-25", "2021-06-28"])  # the first is dropped by retention
    lake.pin(lake.versions()[0].version_id, reason="model v3")
    _freezes(lake, sim, ["2021-06-29", "2021-06-30"])
    kept = [m.version_id for m in lake.versions()]
    assert len(kept) == 3  # the pinned one and the newest two
    scratch = tmp_path / "scratch.duckdb"
    _scratch(lake, scratch)
    assert _objects(lake.catalog_path) == _objects(scratch)
    schemas = {s for s, _, _ in _objects(lake.catalog_path) if s.startswith("v")}
    assert schemas == set(kept)


def test_catalog_when_the_lake_folder_moved_then_every_view_reads_the_new_folder(tmp_path, sim):
    old = Lake(tmp_path / "old")
    _freezes(old, sim, ["2021-06-29"])
    shutil.copytree(tmp_path / "old", tmp_path / "new")
    shutil.rmtree(tmp_path / "old")
    moved = Lake(tmp_path / "new")
    _freezes(moved, sim, ["2021-06-30"])
    sqls = [sql for _, _, sql in _objects(moved.catalog_path) if sql]
    assert sqls and all(str(tmp_path / "old") not in sql for sql in sqls)
    with duckdb.connect(str(moved.catalog_path), read_only=True) as con:
        for version in moved.versions():
            assert con.execute(f'SELECT count(*) FROM "{version.version_id}".bars').fetchone()[0] == version.row_counts["bars"]


def test_catalog_when_the_old_file_is_corrupt_then_rebuilt_from_scratch(tmp_path, sim):
    lake = Lake(tmp_path / "lake")
    _freezes(lake, sim, ["2021-06-29"])
    lake.catalog_path.write_bytes(b"not a duckdb file" * 100)
    _freezes(lake, sim, ["2021-06-30"])
    scratch = tmp_path / "scratch.duckdb"
    _scratch(lake, scratch)
    assert _objects(lake.catalog_path) == _objects(scratch)


def test_catalog_when_view_definitions_changed_then_carried_versions_are_rebound(tmp_path, sim, monkeypatch):
    lake = Lake(tmp_path / "lake")
    _freezes(lake, sim, ["2021-06-29"])
    first = lake.current_version_id()
    original = catalog.view_sql
    monkeypatch.setattr(catalog, "view_sql", lambda root, files: {k: f"SELECT * FROM ({v}) LIMIT 123456789" for k, v in original(root, files).items()})
    _freezes(lake, sim, ["2021-06-30"])
    old_schema = [sql for s, _, sql in _objects(lake.catalog_path) if s == first]
    assert len(old_schema) == 3 and all("123456789" in sql for sql in old_schema)


def test_catalog_when_a_version_is_added_then_only_its_views_are_bound_and_main_reads_them(tmp_path, sim, monkeypatch):
    lake = Lake(tmp_path / "lake")
    _freezes(lake, sim, ["2021-06-28", "2021-06-29"])
    bound = []
    original = catalog.create_views
    monkeypatch.setattr(catalog, "create_views", lambda con, root, files, schema_name, database=None:
                        bound.append(schema_name) or original(con, root, files, schema_name, database))
    _freezes(lake, sim, ["2021-06-30"])
    current = lake.current_version_id()
    assert bound == [current]
    with duckdb.connect(str(lake.catalog_path), read_only=True) as con:
        for view in ("bars", "bars_split_adjusted", "bars_raw"):
            assert con.execute(f"SELECT * FROM {view} ORDER BY symbol, date").fetchall() == \
                con.execute(f'SELECT * FROM "{current}".{view} ORDER BY symbol, date').fetchall()
        assert con.execute("SELECT max(date)::VARCHAR FROM bars").fetchone()[0] == "2021-06-30"
