"""`kobe lake ...` from the command line, on a user's own files."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kobe_pipelines.cli import main
from kobe_pipelines.lake import Lake
from kobe_pipelines_tests.lake.conftest import tiny_market
from kobe_pipelines_tests.support.readable import assert_readable


@pytest.fixture()
def source(tmp_path):
    folder = tmp_path / "mydata"
    folder.mkdir()
    bars, splits, dividends = tiny_market()
    bars.assign(date=bars["date"].dt.strftime("%Y-%m-%d")).to_csv(folder / "bars.csv", index=False)
    splits.to_parquet(folder / "splits.parquet", index=False)
    dividends.to_csv(folder / "dividends.csv", index=False)
    return folder


def kobe(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_lake_freeze_when_files_given_then_a_version_is_published_and_queryable_as_csv(tmp_path, source):
    lake = str(tmp_path / "lake")
    frozen = kobe("lake", "freeze", "--provider", "files", "--source", str(source), "--lake", lake)
    assert frozen.exit_code == 0, frozen.output
    assert "new version" in frozen.output and "8 bars 2024-01-02..2024-01-05" in frozen.output
    query = kobe("lake", "query", "--lake", lake, "SELECT date::VARCHAR AS date, close FROM bars_split_adjusted "
                 "WHERE symbol = 'AAA' ORDER BY date")
    # the 2-for-1 split on 2024-01-05 halves the earlier closes 100, 102, 100
    assert query.output == "date,close\n2024-01-02,50.0\n2024-01-03,51.0\n2024-01-04,50.0\n2024-01-05,50.0\n"
    listed = kobe("lake", "versions", "--lake", lake).output.splitlines()
    assert listed[0].split() == ["lake", "version", "bars", "first", "session", "last", "session", "dividends",
                                 "pinned", "because"]
    assert listed[2].split() == ["*", Lake(lake).current_version_id(), "8", "2024-01-02", "2024-01-05", "crsp"]


def test_lake_freeze_when_run_again_with_the_same_files_then_no_new_version(tmp_path, source):
    lake = str(tmp_path / "lake")
    kobe("lake", "freeze", "--provider", "files", "--source", str(source), "--lake", lake)
    again = kobe("lake", "freeze", "--provider", "files", "--source", str(source), "--lake", lake)
    assert "unchanged" in again.output
    assert len(Lake(lake).versions()) == 1


def test_lake_freeze_when_quandl_convention_then_the_manifest_records_it(tmp_path, source):
    lake = str(tmp_path / "lake")
    kobe("lake", "freeze", "--provider", "files", "--source", str(source), "--lake", lake, "--dividend-convention", "quandl")
    assert Lake(lake).current_version().dividend_convention == "quandl"


def test_lake_freeze_when_a_bar_is_bad_then_exit_1_naming_the_record_and_field(tmp_path, source):
    text = (source / "bars.csv").read_text().replace("2024-01-03,101.0,103.0,100.0,102.0", "2024-01-03,101.0,99.0,100.0,102.0")
    (source / "bars.csv").write_text(text)
    result = CliRunner().invoke(main, ["lake", "freeze", "--provider", "files", "--source", str(source), "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 1
    assert "AAA 2024-01-03" in result.output and "high" in result.output
    assert Lake(tmp_path / "lake").versions() == []


def test_lake_verify_when_a_file_is_damaged_then_exit_1_and_the_file_is_named(tmp_path, source):
    lake = str(tmp_path / "lake")
    kobe("lake", "freeze", "--provider", "files", "--source", str(source), "--lake", lake)
    assert kobe("lake", "verify", "--lake", lake).exit_code == 0
    factors = Lake(lake).current_version().files_with_role("factors")[0]
    (Lake(lake).root / factors.path).write_bytes(b"not parquet")
    result = CliRunner().invoke(main, ["lake", "verify", "--lake", lake])
    assert result.exit_code == 1 and factors.path in result.output


def test_lake_pin_when_reason_given_then_listed_with_it(tmp_path, source):
    lake = str(tmp_path / "lake")
    kobe("lake", "freeze", "--provider", "files", "--source", str(source), "--lake", lake)
    version = Lake(lake).current_version_id()
    assert kobe("lake", "pin", version, "--reason", "audit 2024", "--lake", lake).exit_code == 0
    listed = kobe("lake", "versions", "--lake", lake).output.splitlines()
    assert listed[2].split() == ["*", version, "8", "2024-01-02", "2024-01-05", "crsp", "audit", "2024"]


def test_lake_versions_when_pinned_with_a_long_reason_then_table_fits_100_columns_and_ids_stay_whole(tmp_path, source):
    lake = str(tmp_path / "lake")
    kobe("lake", "freeze", "--provider", "files", "--source", str(source), "--lake", lake)
    version = Lake(lake).current_version_id()
    reason = "kept for the 2024 audit of the adjustment factors, see ticket 1234 " * 3
    kobe("lake", "pin", version, "--reason", reason, "--lake", lake)
    listed = kobe("lake", "versions", "--lake", lake).output
    assert_readable(listed)
    assert version in listed and " ".join(listed.split()).count("ticket 1234") == 3
