"""The lake: versions, manifests, content hashes, views, retention, pins, integrity."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

import duckdb
import pandas as pd
import pytest

from kobe_pipelines import market_calendar
from kobe_pipelines.data import schema
from kobe_pipelines.errors import RecordError
from kobe_pipelines.fsutil import sha256_file
from kobe_pipelines.lake import Lake, LakeCorruptionError, LakeVersionNotFound, RawRestatementError
from kobe_pipelines_tests.lake.conftest import sim_inputs, tiny_market


def freeze_tiny(lake: Lake, convention: str = "crsp"):
    bars, splits, dividends = tiny_market()
    return lake.freeze(bars, splits, dividends, provider="test", dividend_convention=convention)


def test_freeze_when_lake_is_empty_then_publishes_a_current_version_with_a_complete_manifest(lake):
    result = freeze_tiny(lake)
    m = result.version
    assert result.created and lake.current_version_id() == m.version_id
    assert (m.provider, m.dividend_convention, m.start_date, m.end_date) == ("test", "crsp", "2024-01-02", "2024-01-05")
    assert m.row_counts["bars"] == 8 and m.row_counts["splits"] == 1 and m.row_counts["dividends"] == 1
    for entry in m.files:
        assert sha256_file(lake.root / entry.path) == entry.sha256
    assert len(m.content_hash) == 64 and m.version_id.endswith(m.content_hash[:8])


def test_views_when_split_and_dividend_then_adjusted_prices_are_raw_times_hand_computed_factors(lake):
    freeze_tiny(lake)
    got = lake.query("SELECT date::VARCHAR AS d, close, volume FROM {} WHERE symbol='AAA' ORDER BY date".format("bars"))
    # split 1-for-2 on 01-05 halves earlier prices and doubles earlier volume; the $1 dividend going
    # ex on 01-04 multiplies earlier prices by 1 - 1/102 (CRSP: the close before the ex-date is 102).
    assert got["close"].tolist() == pytest.approx([100 * 0.5 * 101 / 102, 102 * 0.5 * 101 / 102, 50.0, 50.0], rel=1e-12)
    assert got["volume"].tolist() == [2000.0, 2000.0, 2000.0, 2000.0]
    split_only = lake.query("SELECT close FROM bars_split_adjusted WHERE symbol='AAA' ORDER BY date")["close"].tolist()
    assert split_only == pytest.approx([50.0, 51.0, 50.0, 50.0], rel=1e-12)
    raw = lake.query("SELECT close FROM bars_raw WHERE symbol='AAA' ORDER BY date")["close"].tolist()
    assert raw == [100.0, 102.0, 100.0, 50.0]
    untouched = lake.query("SELECT close FROM bars WHERE symbol='BBB' ORDER BY date")["close"].tolist()
    assert untouched == [10.0, 10.1, 10.2, 10.3]


def test_views_when_quandl_convention_then_dividend_factor_uses_the_ex_date_close(lake):
    freeze_tiny(lake, convention="quandl")
    got = lake.query("SELECT close FROM bars WHERE symbol='AAA' ORDER BY date")["close"].tolist()
    # quandl factor close_ex / (close_ex + D) = 100 / 101
    assert got == pytest.approx([100 * 0.5 * 100 / 101, 102 * 0.5 * 100 / 101, 50.0, 50.0], rel=1e-12)


def test_freeze_when_inputs_are_identical_then_no_new_version_and_the_same_content_hash(lake):
    first = freeze_tiny(lake)
    again = freeze_tiny(lake)
    assert not again.created
    assert again.version.version_id == first.version.version_id
    assert again.version.content_hash == first.version.content_hash
    assert [m.version_id for m in lake.versions()] == [first.version.version_id]


def test_content_hash_when_same_inputs_in_two_fresh_lakes_then_equal(tmp_path):
    a = freeze_tiny(Lake(tmp_path / "a")).version
    b = freeze_tiny(Lake(tmp_path / "b")).version
    assert a.content_hash == b.content_hash


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_content_hash_when_symbols_are_categorical_then_equal_to_the_same_bars_as_strings(tmp_path, sim, order):
    # A Parquet source gives a categorical symbol column (categories in the file's order, an unused
    # one too); the lake must store the very bytes the string column gives.
    bars, splits, dividends = sim_inputs(sim)
    if order == "shuffled":
        bars = bars.sample(frac=1.0, random_state=7).reset_index(drop=True)
    names = sorted(bars["symbol"].unique())
    categorical = bars.assign(symbol=pd.Categorical(bars["symbol"], categories=["ZZZZ"] + names[::-1]))
    a = Lake(tmp_path / "a").freeze(bars, splits, dividends, provider="files").version
    b = Lake(tmp_path / "b").freeze(categorical, splits, dividends, provider="files").version
    assert a.content_hash == b.content_hash
    # every file but the provenance, which stamps each action with the second it was first seen
    stamped = "action_provenance"
    assert sorted(f.sha256 for f in a.files if f.role != stamped) == sorted(f.sha256 for f in b.files if f.role != stamped)


@pytest.mark.parametrize("as_table", [False, True], ids=["frame", "arrow"])
def test_freeze_when_an_action_names_a_symbol_only_the_symbol_dictionary_lists_then_it_is_set_aside(lake, as_table):
    # A Parquet source read with its dictionary lists every symbol of the file (in pandas, a
    # categorical's categories), also one whose bars all lie outside the range read: it has no
    # bars in the lake, so its dividend is set aside (kept, counted, not applied).
    bars, splits, dividends = tiny_market()
    listed = bars.assign(symbol=pd.Categorical(bars["symbol"], categories=["AAA", "BBB", "CCC"]))
    ccc = pd.concat([dividends, dividends.assign(symbol="CCC")], ignore_index=True)
    result = lake.freeze(schema.bars_table(listed) if as_table else listed, splits, ccc, provider="test")
    assert (result.actions_set_aside.dividends, result.actions_set_aside.splits, result.actions_set_aside.symbols) == (1, 0, 1)
    assert sorted(set(result.events["symbol"])) == ["AAA"]
    aside = lake.derived_table("actions_set_aside")
    assert aside[["kind", "symbol", "cash_amount"]].values.tolist() == [["dividend", "CCC", 1.0]]


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_content_hash_when_bars_come_as_an_arrow_table_then_equal_to_the_frame(tmp_path, sim, order):
    bars, splits, dividends = sim_inputs(sim)
    if order == "shuffled":
        bars = bars.sample(frac=1.0, random_state=5).reset_index(drop=True)
    a = Lake(tmp_path / "a").freeze(bars, splits, dividends, provider="files").version
    b = Lake(tmp_path / "b").freeze(schema.bars_table(bars), splits, dividends, provider="files").version
    assert a.content_hash == b.content_hash


def test_refreeze_when_one_new_session_then_old_files_are_reused_and_one_raw_file_is_added(lake, sim):
    bars, splits, dividends = sim_inputs(sim, end="2021-06-29")
    first = lake.freeze(bars, splits, dividends, provider="simulated").version
    bars2, splits2, dividends2 = sim_inputs(sim)
    second = lake.freeze(bars2, splits2, dividends2, provider="simulated").version
    old_raw = {e.path for e in first.files_with_role("raw_bars")}
    new_raw = {e.path for e in second.files_with_role("raw_bars")}
    assert old_raw < new_raw and len(new_raw - old_raw) == 1
    added = next(e for e in second.files_with_role("raw_bars") if e.path not in old_raw)
    assert (added.min_date, added.max_date) == ("2021-06-30", "2021-06-30")
    assert added.rows == int((bars2["date"] == "2021-06-30").sum())
    assert second.row_counts["bars"] == len(bars2)


def test_query_when_version_pinned_by_id_then_reads_that_version_not_the_current_one(lake, sim):
    bars, splits, dividends = sim_inputs(sim, end="2021-06-29")
    first = lake.freeze(bars, splits, dividends, provider="simulated").version
    lake.freeze(*sim_inputs(sim), provider="simulated")
    sql = "SELECT max(date)::VARCHAR AS last FROM bars"
    assert lake.query(sql)["last"].iloc[0] == "2021-06-30"
    assert lake.query(sql, version_id=first.version_id)["last"].iloc[0] == "2021-06-29"


def test_catalog_file_when_opened_with_plain_duckdb_then_has_current_views_and_one_schema_per_version(lake):
    m = freeze_tiny(lake).version
    with duckdb.connect(str(lake.catalog_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM bars").fetchone()[0] == 8
        assert con.execute("SELECT count(*) FROM bars_raw").fetchone()[0] == 8
        assert con.execute(f'SELECT count(*) FROM "{m.version_id}".bars_split_adjusted').fetchone()[0] == 8
        assert con.execute("SELECT version_id, is_current FROM lake_versions").fetchall() == [(m.version_id, True)]


def test_read_bars_when_unknown_version_then_lake_version_not_found_names_it(lake):
    freeze_tiny(lake)
    with pytest.raises(LakeVersionNotFound, match="v-does-not-exist"):
        lake.read_bars(version_id="v-does-not-exist")


def test_read_bars_when_filtered_then_returns_schema_columns_sorted(lake):
    freeze_tiny(lake)
    got = lake.read_bars(view="split", symbols=["AAA"], start="2024-01-03", end="2024-01-04")
    assert list(got.columns) == ["symbol", "date", "open", "high", "low", "close", "volume"]
    assert got["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-03", "2024-01-04"]
    assert got["close"].tolist() == [51.0, 50.0]


def test_retention_when_more_versions_than_kept_then_oldest_unpinned_deleted_with_unreferenced_files(tmp_path, sim):
    lake = Lake(tmp_path / "lake", retention=2)
    ends = ["2021-06-24", "2021-06-25", "2021-06-28", "2021-06-29"]
    made = [lake.freeze(*sim_inputs(sim, end=ends[0]), provider="simulated").version]
    lake.pin(made[0].version_id, "model kobe-ensemble v1 learned from it")
    made += [lake.freeze(*sim_inputs(sim, end=e), provider="simulated").version for e in ends[1:]]
    lake.freeze(*sim_inputs(sim), provider="simulated")
    kept = [m.version_id for m in lake.versions()]
    # five versions made: the newest two, plus the pinned first, remain; the second and third are gone
    assert made[0].version_id in kept and made[1].version_id not in kept and made[2].version_id not in kept
    assert len(kept) == 3
    referenced = {e.path for m in lake.versions() for e in m.files}
    on_disk = {p.relative_to(lake.root).as_posix() for p in (lake.root / "raw").rglob("*.parquet")}
    assert on_disk == {p for p in referenced if p.startswith("raw/")}
    assert lake.verify(made[0].version_id) == []


def test_verify_when_a_file_is_corrupted_then_reports_it_and_freeze_is_blocked_leaving_the_lake_as_it_was(lake, sim):
    first = lake.freeze(*sim_inputs(sim, end="2021-06-29"), provider="simulated").version
    victim = lake.root / first.files_with_role("raw_bars")[0].path
    victim.write_bytes(victim.read_bytes()[:-100] + b"x" * 100)
    problems = lake.verify()
    assert len(problems) == 1 and first.files_with_role("raw_bars")[0].path in problems[0]
    with pytest.raises(LakeCorruptionError, match="does not match"):
        lake.freeze(*sim_inputs(sim), provider="simulated")
    assert [m.version_id for m in lake.versions()] == [first.version_id]
    assert lake.current_version_id() == first.version_id


def test_publish_when_a_prepared_file_changed_since_then_corruption_error_and_no_new_version(lake, sim):
    first = lake.freeze(*sim_inputs(sim, end="2021-06-29"), provider="simulated").version
    candidate = lake.prepare(*sim_inputs(sim), provider="simulated")
    new = [e for e in candidate.entries if e.role == "raw_bars" and e not in first.files]
    victim = lake.root / new[0].path
    victim.write_bytes(victim.read_bytes()[:-100] + b"x" * 100)  # same size, other bytes
    with pytest.raises(LakeCorruptionError, match="does not match"):
        lake.publish(candidate)
    assert lake.current_version_id() == first.version_id


def test_verify_when_a_file_changed_but_kept_its_stat_then_still_reported(lake, sim):
    # a freeze skips re-hashing files whose inode, size and mtime are unchanged; verify never does
    first = lake.freeze(*sim_inputs(sim, end="2021-06-29"), provider="simulated").version
    victim = lake.root / first.files_with_role("raw_bars")[0].path
    before = victim.stat()
    victim.write_bytes(victim.read_bytes()[:-100] + b"x" * 100)
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))
    problems = Lake(lake.root).verify()
    assert len(problems) == 1 and first.files_with_role("raw_bars")[0].path in problems[0]


def test_freeze_when_the_hash_cache_is_corrupt_then_it_is_ignored_and_a_changed_file_still_blocks(lake, sim):
    first = lake.freeze(*sim_inputs(sim, end="2021-06-29"), provider="simulated").version
    (lake.root / ".hash_cache.json").write_text("{not json")
    victim = lake.root / first.files_with_role("raw_bars")[0].path
    victim.write_bytes(victim.read_bytes()[:-100] + b"x" * 100)
    with pytest.raises(LakeCorruptionError, match="does not match"):
        Lake(lake.root).freeze(*sim_inputs(sim), provider="simulated")
    assert Lake(lake.root).current_version_id() == first.version_id


@pytest.mark.parametrize(
    "column, value, field",
    [("close", float("nan"), "close"), ("low", -1.0, "low"), ("high", 1.0, "high")],
)
def test_freeze_when_a_bar_is_bad_then_record_error_names_record_and_field_and_nothing_changes(lake, column, value, field):
    first = freeze_tiny(lake).version
    bars, splits, dividends = tiny_market()
    extra = bars.iloc[[0]].assign(date=pd.Timestamp("2024-01-08"))
    extra[column] = value
    with pytest.raises(RecordError) as err:
        lake.freeze(pd.concat([bars, extra]), splits, dividends, provider="test")
    assert "AAA 2024-01-08" in str(err.value) and err.value.field == field
    assert [m.version_id for m in lake.versions()] == [first.version_id]
    assert lake.query("SELECT count(*) AS n FROM bars_raw")["n"].iloc[0] == 8


def _data_files(lake: Lake) -> set[str]:
    return {p.relative_to(lake.root).as_posix() for folder in ("raw", "actions", "factors")
            for p in (lake.root / folder).rglob("*") if p.is_file()}


def test_first_freeze_when_a_bar_is_bad_then_no_data_file_is_left_behind(lake):
    # a first freeze starts writing its raw files before the bars are validated: a bad bar must
    # take every file that freeze wrote away with it
    bars, splits, dividends = tiny_market()
    bars.loc[5, "high"] = 1.0  # BBB 2024-01-03: high below low
    with pytest.raises(RecordError) as err:
        lake.freeze(bars, splits, dividends, provider="test")
    assert "BBB 2024-01-03" in str(err.value) and err.value.field == "high"
    assert _data_files(lake) == set() and lake.versions() == []
    assert freeze_tiny(lake).created  # and the lake is usable afterwards


def test_refreeze_when_an_action_is_bad_then_the_files_it_wrote_are_removed_and_stored_ones_kept(lake):
    first = freeze_tiny(lake).version
    stored = _data_files(lake)
    bars, splits, dividends = tiny_market()
    new_day = bars.iloc[[3, 7]].assign(date=pd.Timestamp("2024-01-08"))  # a new session: a new raw file
    bad = pd.concat([dividends, dividends.assign(ex_dividend_date=pd.Timestamp("2024-01-08"), cash_amount=60.0)])
    with pytest.raises(RecordError, match="AAA 2024-01-08"):  # $60 against a previous close of $50
        lake.freeze(pd.concat([bars, new_day]), splits, bad, provider="test")
    assert _data_files(lake) == stored
    assert [m.version_id for m in lake.versions()] == [first.version_id] and lake.verify() == []


def test_freeze_when_a_stored_bar_comes_back_different_then_restatement_error_and_nothing_changes(lake):
    first = freeze_tiny(lake).version
    bars, splits, dividends = tiny_market()
    bars.loc[1, "close"] = 102.5
    with pytest.raises(RawRestatementError, match="AAA 2024-01-03.*close"):
        lake.freeze(bars, splits, dividends, provider="test")
    assert lake.current_version_id() == first.version_id


@pytest.mark.parametrize("as_table", [False, True], ids=["frame", "arrow"])
def test_freeze_when_stored_bars_of_two_symbols_come_back_different_then_the_first_by_name_is_named(lake, as_table):
    # the symbols arrive dictionary-encoded with BBB first in the dictionary: the error still names
    # the first restated bar by (symbol, date), AAA's
    first = freeze_tiny(lake).version
    bars, splits, dividends = tiny_market()
    bars.loc[1, "close"] = 102.5  # AAA 2024-01-03
    bars.loc[6, "close"] = 10.25  # BBB 2024-01-04
    listed = bars.assign(symbol=pd.Categorical(bars["symbol"], categories=["BBB", "AAA"]))
    with pytest.raises(RawRestatementError) as info:
        lake.freeze(schema.bars_table(listed) if as_table else listed, splits, dividends, provider="test")
    assert (info.value.record, info.value.field) == ("AAA 2024-01-03", "close")
    assert lake.current_version_id() == first.version_id


def test_pins_file_when_corrupt_then_lake_corruption_error_names_it(lake):
    freeze_tiny(lake)
    (lake.root / "pins.json").write_text("{not json")
    with pytest.raises(LakeCorruptionError, match="pins.json"):
        lake.pins()


def test_manifest_when_read_back_then_round_trips(lake):
    m = freeze_tiny(lake).version
    on_disk = json.loads((lake.versions_dir / m.version_id / "manifest.json").read_text())
    assert on_disk["content_hash"] == m.content_hash
    assert lake.version(m.version_id) == m


def test_refreeze_when_built_up_day_by_day_then_adjusted_views_equal_a_fresh_full_freeze(tmp_path, sim):
    # the incremental path reuses the closes recorded for known events; it must not change any price
    stepwise = Lake(tmp_path / "stepwise")
    for end in ("2021-06-25", "2021-06-28", "2021-06-29", "2021-06-30"):
        stepwise.freeze(*sim_inputs(sim, end=end), provider="simulated")
    fresh = Lake(tmp_path / "fresh")
    fresh.freeze(*sim_inputs(sim), provider="simulated")
    for view in ("bars", "bars_split_adjusted"):
        sql = f"SELECT * FROM {view} ORDER BY symbol, date"
        pd.testing.assert_frame_equal(stepwise.query(sql), fresh.query(sql))
    assert len(stepwise.events()) == len(fresh.events()) > 0


def test_refreeze_when_a_late_bar_lands_before_an_applied_event_then_that_event_uses_it(tmp_path):
    # AAA's 01-03 bar arrives a day late: the first freeze takes the dividend's previous close
    # from 01-02 (100), the refreeze must move it to the late bar (102), as a fresh freeze does
    bars, splits, dividends = tiny_market()
    late = (bars["symbol"] == "AAA") & (bars["date"] == pd.Timestamp("2024-01-03"))
    stepwise = Lake(tmp_path / "stepwise")
    stepwise.freeze(bars.loc[~late], splits, dividends, provider="test")
    before = stepwise.events().set_index("kind").loc["dividend"]
    assert (before["prev_date"], before["close_prev"]) == (pd.Timestamp("2024-01-02"), 100.0)
    stepwise.freeze(bars, splits, dividends, provider="test")
    after = stepwise.events().set_index("kind").loc["dividend"]
    assert (after["prev_date"], after["close_prev"]) == (pd.Timestamp("2024-01-03"), 102.0)
    assert after["event_factor"] == pytest.approx(1 - 1 / 102, rel=1e-15)
    fresh = Lake(tmp_path / "fresh")
    fresh.freeze(bars, splits, dividends, provider="test")
    sql = "SELECT * FROM bars ORDER BY symbol, date"
    pd.testing.assert_frame_equal(stepwise.query(sql), fresh.query(sql))


def _derived(lake: Lake, role: str) -> pd.DataFrame:
    return lake.derived_table(role)


def test_refreeze_when_actions_arrive_late_then_factors_and_events_equal_a_full_recompute(tmp_path, sim):
    # a refreeze recomputes only the symbols whose actions or closes changed and keeps the others'
    # stored factors: the tables must be exactly those of a full computation on the same inputs
    bars, splits, divs = sim_inputs(sim)
    payers = sorted(divs["symbol"].unique())
    late = divs[divs["symbol"] == payers[0]].iloc[[2]]  # reported only by the last refreeze, months late
    regular = divs[divs["symbol"] == payers[1]].iloc[2]
    same_day = divs.loc[[regular.name]].assign(cash_amount=0.07)  # a special dividend beside a known one
    early = divs.drop(late.index)
    stepwise = Lake(tmp_path / "stepwise")
    stepwise.freeze(bars[bars["date"] <= "2021-06-28"], splits, early, provider="simulated")
    stepwise.freeze(bars, splits, pd.concat([early, late, same_day]), provider="simulated")
    fresh = Lake(tmp_path / "fresh")
    fresh.freeze(bars, splits, pd.concat([divs, same_day]), provider="simulated")
    for role in ("factors", "adjustment_events"):
        pd.testing.assert_frame_equal(_derived(stepwise, role), _derived(fresh, role))
    # both new dividends were applied (one event row per symbol, session and kind: same-day cash adds up)
    events = _derived(stepwise, "adjustment_events").set_index(["symbol", "event_date", "kind"])["cash_amount"]
    assert events[(late.iloc[0]["symbol"], late.iloc[0]["ex_dividend_date"], "dividend")] == pytest.approx(
        late.iloc[0]["cash_amount"])
    assert events[(regular["symbol"], regular["ex_dividend_date"], "dividend")] == pytest.approx(regular["cash_amount"] + 0.07)


def test_refreeze_when_dividends_join_stored_ones_then_the_table_is_in_symbol_date_amount_order(tmp_path):
    # stored: AAA $1.00 ex 01-04. New: two specials beside it ($0.25 and $2.00), one on 01-03,
    # and BBB's first; the stored table must read as a fresh freeze's: by symbol, date, amount
    bars, splits, dividends = tiny_market()
    new = pd.DataFrame({
        "symbol": ["BBB", "AAA", "AAA", "AAA"],
        "ex_dividend_date": pd.to_datetime(["2024-01-04", "2024-01-04", "2024-01-03", "2024-01-04"]),
        "cash_amount": [0.05, 2.0, 0.5, 0.25],
    })
    stepwise = Lake(tmp_path / "stepwise")
    stepwise.freeze(bars, splits, dividends, provider="test")
    stepwise.freeze(bars, splits, pd.concat([dividends, new]), provider="test")
    got = _derived(stepwise, "dividends")
    assert list(zip(got["symbol"], got["ex_dividend_date"].dt.strftime("%m-%d"), got["cash_amount"])) == [
        ("AAA", "01-03", 0.5), ("AAA", "01-04", 0.25), ("AAA", "01-04", 1.0), ("AAA", "01-04", 2.0), ("BBB", "01-04", 0.05),
    ]
    fresh = Lake(tmp_path / "fresh")
    fresh.freeze(bars, splits, pd.concat([dividends, new]), provider="test")
    for role in ("dividends", "factors", "adjustment_events"):
        pd.testing.assert_frame_equal(_derived(stepwise, role), _derived(fresh, role))


class _Clock:
    """Stands in for the `dt` module in freeze_steps: datetime.now() returns `at`."""

    def __init__(self, at: str):
        self.at = dt.datetime.fromisoformat(at)
        self.timezone = dt.timezone
        clock = self

        class _Datetime:
            @staticmethod
            def now(tz=None):
                return clock.at

        self.datetime = _Datetime


def test_refreeze_when_actions_are_new_then_only_they_are_stamped_with_this_freeze_time(tmp_path, sim, monkeypatch):
    from kobe_pipelines.lake import freeze_steps

    bars, splits, divs = sim_inputs(sim)
    payer = sorted(divs["symbol"].unique())[0]
    late = divs[divs["symbol"] == payer].iloc[[1]]
    lake = Lake(tmp_path / "lake")
    clock = _Clock("2024-05-01T22:00:00+00:00")
    monkeypatch.setattr(freeze_steps, "dt", clock)
    lake.freeze(bars[bars["date"] <= "2021-06-28"], splits, divs.drop(late.index), provider="simulated")
    first = _derived(lake, "action_provenance")
    assert len(first) == len(splits) + len(divs) - 1 and set(first["first_seen_at"]) == {"2024-05-01T22:00:00+00:00"}

    clock.at = dt.datetime.fromisoformat("2024-05-02T22:00:00+00:00")
    # the provider re-sends every action, a split restated as 2:4 for 1:2 among them
    restated = splits.iloc[[0]].assign(split_from=splits.iloc[0]["split_from"] * 2, split_to=splits.iloc[0]["split_to"] * 2)
    lake.freeze(bars, pd.concat([splits, restated]), divs, provider="simulated")
    prov = _derived(lake, "action_provenance")
    assert len(prov) == len(splits) + len(divs)
    new = prov[prov["first_seen_at"] == "2024-05-02T22:00:00+00:00"]
    assert list(zip(new["kind"], new["symbol"], new["date"], new["amount"])) == [
        ("dividend", payer, late.iloc[0]["ex_dividend_date"], late.iloc[0]["cash_amount"])]
    assert prov.equals(prov.sort_values(["kind", "symbol", "date", "amount"]).reset_index(drop=True))


def test_refreeze_when_a_late_dividend_falls_in_a_long_halt_then_its_closes_come_from_beyond_the_window(tmp_path):
    # AAA does not trade from 2023-12-18 to 2024-03-01; a dividend going ex on 2024-02-15 (inside
    # the halt) is reported late. Its previous close is 2023-12-15's, in the 2023 file, 62 days
    # before: outside the first, windowed look-up (2024's file), so every file must be searched.
    days = market_calendar.sessions("2023-11-01", "2024-05-31")
    aaa = [d for d in days if not (pd.Timestamp("2023-12-18") <= d < pd.Timestamp("2024-03-01"))]
    rows = [("AAA", d, 100.0 + i * 0.1) for i, d in enumerate(aaa)] + [("BBB", d, 50.0) for d in days]
    bars = pd.DataFrame(rows, columns=["symbol", "date", "close"])
    bars = bars.assign(open=bars["close"], high=bars["close"] + 1, low=bars["close"] - 1, volume=1000.0)
    splits = pd.DataFrame({"symbol": [], "execution_date": [], "split_from": [], "split_to": []})
    dividend = pd.DataFrame({"symbol": ["AAA"], "ex_dividend_date": ["2024-02-15"], "cash_amount": [1.5]})
    early = pd.DataFrame({"symbol": ["BBB"], "ex_dividend_date": ["2024-04-10"], "cash_amount": [0.5]})
    stepwise = Lake(tmp_path / "stepwise")
    stepwise.freeze(bars, splits, early, provider="test", as_of=dt.date(2024, 5, 31))
    stepwise.freeze(bars, splits, pd.concat([early, dividend]), provider="test", as_of=dt.date(2024, 5, 31))
    events = _derived(stepwise, "adjustment_events").set_index("symbol")
    last_close_before = bars[(bars["symbol"] == "AAA") & (bars["date"] < "2024-02-15")]["close"].iloc[-1]
    assert events.loc["AAA", "prev_date"] == pd.Timestamp("2023-12-15")
    assert events.loc["AAA", "close_prev"] == pytest.approx(last_close_before)
    assert events.loc["AAA", "event_factor"] == pytest.approx(1 - 1.5 / last_close_before)  # CRSP: 1 - D / close_prev
    fresh = Lake(tmp_path / "fresh")
    fresh.freeze(bars, splits, pd.concat([early, dividend]), provider="test", as_of=dt.date(2024, 5, 31))
    for role in ("factors", "adjustment_events"):
        pd.testing.assert_frame_equal(_derived(stepwise, role), _derived(fresh, role))


def test_actions_fetch_start_when_empty_then_history_start_else_thirty_days_before_the_last_bar(lake, sim):
    assert lake.actions_fetch_start("2020-01-02") == "2020-01-02"
    lake.freeze(*sim_inputs(sim), provider="simulated")  # bars through 2021-06-30
    assert lake.actions_fetch_start("2020-01-02") == "2021-05-31"


@pytest.mark.parametrize("size", [0, 1, 4 << 20, (4 << 20) + 3, (9 << 20) + 1])
def test_sha256_file_when_the_file_spans_buffers_then_equals_hashlib_over_the_whole_bytes(tmp_path, size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path, chunk=4 << 20) == hashlib.sha256(data).hexdigest()
