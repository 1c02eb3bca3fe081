"""`duck`: the process's shared in-memory DuckDB, its cursors, and files attached to it."""

from __future__ import annotations

import multiprocessing as mp

import duckdb

from kobe_pipelines.lake import duck


def _query_in_child(queue) -> None:
    import os

    inherited = duck._database[1]
    with duck.cursor() as con:
        answer = con.execute("SELECT 40 + 2").fetchone()[0]
    queue.put((answer, duck._database[0] == os.getpid(), duck._database[1] is not inherited,
               any(kept is inherited for kept in duck._inherited)))


def test_cursor_when_used_in_a_forked_child_then_the_child_opens_its_own_database():
    with duck.cursor() as con:  # the parent's database exists before the fork
        assert con.execute("SELECT 1").fetchone() == (1,)
    parent_database = duck._database
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_query_in_child, args=(queue,))
    child.start()
    answer = queue.get(timeout=60)
    child.join(timeout=60)
    # the child answered from a database of its own, and kept (never closed) the parent's
    assert (answer, child.exitcode) == ((42, True, True, True), 0)
    assert duck._database is parent_database  # the parent's own database is untouched


def test_cursor_when_two_cursors_then_each_has_its_own_registrations():
    with duck.cursor() as first, duck.cursor() as second:
        first.execute("CREATE TEMP TABLE t AS SELECT 1 AS x")
        assert first.execute("SELECT count(*) FROM t").fetchone() == (1,)
        tables = {row[0] for row in second.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert "t" not in tables  # a temp table belongs to its connection only


def test_attached_when_left_then_the_file_holds_what_was_written_and_is_detached(tmp_path):
    path = tmp_path / "it's a catalog.duckdb"  # a quote in the path is escaped
    with duck.attached(path) as (con, alias):
        con.execute(f'CREATE VIEW "{alias}".main.answer AS SELECT 42 AS x')
    with duck.cursor() as con:
        names = {row[0] for row in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
    assert alias not in names
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT x FROM answer").fetchone() == (42,)
