"""`kobe lake query` is read-only: each attack of issue 17 gets a clear refusal and changes nothing."""

from __future__ import annotations

import json

import duckdb
import pytest
from click.testing import CliRunner

from kobe_pipelines.cli import main
from kobe_pipelines.fsutil import sha256_file
from kobe_pipelines.lake import Lake, QueryRefused
from kobe_pipelines_tests.lake.conftest import tiny_market


@pytest.fixture()
def lake(tmp_path) -> Lake:
    """A lake with two versions: the tiny market less its last session, then all of it."""
    bars, splits, dividends = tiny_market()
    store = Lake(tmp_path / "lake")
    store.freeze(bars[bars["date"] < "2024-01-05"], splits, dividends, provider="test")
    store.freeze(bars, splits, dividends, provider="test")
    return store


def query(lake: Lake, sql: str):
    return CliRunner().invoke(main, ["lake", "query", "--lake", str(lake.root), sql])


def refused(result, word: str) -> None:
    """Exit 1 with one line naming the refused statement."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: lake queries") and word in lines[0], result.output


def test_lake_query_when_copy_to_current_then_refused_and_the_lake_keeps_its_version(lake):
    older, current = [m.version_id for m in lake.versions()]
    refused(query(lake, f"COPY (SELECT '{older}') TO '{lake.root / 'CURRENT'}' (FORMAT csv, HEADER false)"), "COPY")
    assert lake.current_version_id() == current
    assert lake.verify() == []


def test_lake_query_when_attach_of_the_catalog_then_refused(lake):
    refused(query(lake, f"ATTACH '{lake.catalog_path}' AS c"), "ATTACH")


@pytest.mark.parametrize("statement", ["DROP VIEW catalog.main.bars", "CREATE TABLE catalog.main.t AS SELECT 1",
                                       "DROP VIEW bars", "CREATE TABLE t AS SELECT 1"])
def test_lake_query_when_dropping_or_creating_then_refused_and_the_catalog_is_unchanged(lake, statement):
    before = sha256_file(lake.catalog_path)
    refused(query(lake, statement), statement.split()[0])
    assert sha256_file(lake.catalog_path) == before
    with duckdb.connect(str(lake.catalog_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM bars").fetchone()[0] == 8


def test_lake_query_when_copying_a_rewritten_table_over_a_raw_file_then_refused_and_prices_unchanged(lake):
    raw = lake.current_version().files_with_role("raw_bars")[0]
    before = sha256_file(lake.abspath(raw))
    attack = (f"COPY (SELECT symbol, date, open * 10 AS open, high * 10 AS high, low * 10 AS low, close * 10 AS close, "
              f"volume FROM bars_raw) TO '{lake.abspath(raw)}' (FORMAT parquet, USE_TMP_FILE false)")
    refused(query(lake, attack), "COPY")
    assert sha256_file(lake.abspath(raw)) == before
    assert lake.verify() == []


def test_lake_query_when_copy_to_a_state_file_then_refused_and_the_file_is_unchanged(lake, tmp_path):
    mark = tmp_path / "state" / "high_water_mark.json"
    mark.parent.mkdir(parents=True)
    mark.write_text(json.dumps({"high_water_mark": 125000.0}))
    refused(query(lake, f"COPY (SELECT 1.0 AS high_water_mark) TO '{mark}' (FORMAT json)"), "COPY")
    assert json.loads(mark.read_text()) == {"high_water_mark": 125000.0}


@pytest.mark.parametrize("statement, word", [("INSTALL httpfs", "INSTALL"), ("LOAD httpfs", "LOAD"),
                                             ("EXPORT DATABASE '/tmp/kobe-export'", "EXPORT"),
                                             ("SET enable_external_access = true", "SET"),
                                             ("PRAGMA enable_profiling", "PRAGMA"), ("CALL pragma_version()", "CALL")])
def test_lake_query_when_a_statement_would_install_export_or_reconfigure_then_refused(lake, statement, word):
    refused(query(lake, statement), word)


def test_lake_query_when_a_select_reads_a_url_then_refused_without_loading_an_extension(lake):
    result = query(lake, "SELECT * FROM read_parquet('https://example.invalid/bars.parquet')")
    refused(result, "lake's own files")
    with duckdb.connect() as con:  # nothing was installed for this DuckDB
        installed = con.execute("SELECT count(*) FROM duckdb_extensions() WHERE extension_name = 'httpfs' AND installed").fetchone()[0]
    assert installed == 0


def test_lake_query_when_a_select_reads_a_file_outside_the_lake_then_refused(lake, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("key\nhunter2\n")
    result = query(lake, f"SELECT * FROM read_csv('{secret}')")
    refused(result, "lake's own files")
    assert "hunter2" not in result.output


def test_lake_query_when_selecting_then_the_current_and_every_retained_version_are_readable(lake):
    older, current = [m.version_id for m in lake.versions()]
    result = query(lake, f'SELECT (SELECT count(*) FROM bars) AS now, (SELECT count(*) FROM catalog."{older}".bars) AS before, '
                         "(SELECT count(*) FROM lake_versions) AS versions")
    assert result.exit_code == 0, result.output
    assert result.output == "now,before,versions\n8,6,2\n"


def test_lake_connect_when_python_code_reconfigures_the_session_then_duckdb_refuses(lake):
    with lake.connect() as con:
        assert con.execute("SELECT count(*) FROM bars").fetchone()[0] == 8
        with pytest.raises(duckdb.Error, match="locked"):
            con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"COPY (SELECT 1) TO '{lake.root / 'CURRENT'}'")


def test_lake_query_when_several_statements_then_each_is_checked(lake):
    with pytest.raises(QueryRefused, match="COPY"):
        lake.query(f"SELECT 1; COPY (SELECT 1) TO '{lake.root / 'x.csv'}'")
    assert not (lake.root / "x.csv").exists()
