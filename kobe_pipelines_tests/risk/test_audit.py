from __future__ import annotations

import json

import duckdb
import pytest

from kobe_pipelines.risk.approvals import ApprovalHistory
from kobe_pipelines.risk.audit import AuditLog, duckdb_source, read_audit_log
from kobe_pipelines.risk.jsonl import TornLineWarning
from kobe_pipelines_tests.risk.conftest import buy, make_book, sell


@pytest.fixture
def logged(make_gate, state, clock):
    """Three decisions: an approved buy, a rejected NaN-entry buy, an approved sell."""
    gate = make_gate()
    book = make_book()
    gate.decide(buy("AAPL", 10, 100.0, stop=95.0, client_order_id="a-1"), book)
    clock.advance(1)
    gate.decide(buy("AAPL", 10, float("nan"), client_order_id="a-2"), book)
    clock.advance(1)
    gate.decide(sell("MSFT", 5, 200.0, stop=210.0, client_order_id="a-3"), book)
    return state / "risk_audit.jsonl"


def test_decide_when_called_then_one_json_line_per_decision_with_intent_checks_time_and_verdict(logged):
    lines = [json.loads(line) for line in logged.read_text().splitlines()]
    assert [line["approved"] for line in lines] == [True, False, True]
    first = lines[0]
    assert first["decided_at"] == "2024-03-01T14:30:00+00:00"
    assert first["intent"]["client_order_id"] == "a-1" and first["intent"]["stop"] == 95.0
    assert len(first["checks"]) == 14 and first["failed"] == []
    assert lines[1]["intent"]["entry"] is None and lines[1]["invalid"] == {"entry": "nan"}


def test_read_audit_log_when_log_exists_then_dataframe_in_order_with_reasons(logged, state):
    frame = read_audit_log(state)
    assert frame["client_order_id"].tolist() == ["a-1", "a-2", "a-3"]
    assert frame["approved"].tolist() == [True, False, True]
    assert str(frame["decided_at"].dt.tz) == "UTC"
    assert "field 'entry'" in frame.loc[1, "reason"] and frame.loc[0, "reason"] == "approved"
    assert read_audit_log(state, limit=1)["client_order_id"].tolist() == ["a-3"]


def test_duckdb_when_reading_the_log_with_read_json_auto_then_decisions_are_queryable(logged):
    rows = duckdb.sql(
        f"SELECT intent.client_order_id, approved FROM read_json_auto('{logged}') ORDER BY decided_at"
    ).fetchall()
    assert rows == [("a-1", True), ("a-2", False), ("a-3", True)]


def test_duckdb_when_using_the_typed_source_then_failed_checks_unnest(logged):
    rows = duckdb.sql(
        f"SELECT intent.client_order_id, unnest(failed) AS check_name FROM {duckdb_source(logged)} "
        "WHERE NOT approved ORDER BY check_name"
    ).fetchall()
    assert ("a-2", "fields") in rows and all(r[0] == "a-2" for r in rows)


def test_read_audit_log_when_last_line_torn_by_a_crash_then_warns_and_keeps_earlier_records(logged, state):
    with open(logged, "ab") as handle:
        handle.write(b'{"decision_id": "x", "appro')
    with pytest.warns(TornLineWarning):
        frame = read_audit_log(state)
    assert frame["client_order_id"].tolist() == ["a-1", "a-2", "a-3"]
    # DuckDB over the typed source skips it as well.
    assert duckdb.sql(f"SELECT count(*) FROM {duckdb_source(logged)}").fetchall() == [(3,)]


def test_gate_when_restarted_after_a_torn_append_then_moves_fragment_aside_and_keeps_logging(logged, state, make_gate):
    with open(logged, "ab") as handle:
        handle.write(b'{"decision_id": "x", "appro')
    gate = make_gate()
    with pytest.warns(TornLineWarning):  # reading the approvals under the decision lock finds it
        gate.decide(buy("AAPL", 1, 100.0, client_order_id="a-4"), make_book())
    assert [json.loads(line)["intent"]["client_order_id"] for line in logged.read_text().splitlines()] == [
        "a-1", "a-2", "a-3", "a-4"]
    assert len(list(state.glob("risk_audit.jsonl.torn-*"))) == 1


def test_approval_history_when_log_has_mixed_decisions_then_only_approved_ids_and_times(logged):
    history = ApprovalHistory(logged, own_prefix="not-a-prefix-", window_s=60.0, keep_times=100)
    history.catch_up()
    assert set(history.approvals) == {"a-1", "a-3"}
    assert [a.decided_at for a in history.approvals.values()] == ["2024-03-01T14:30:00+00:00", "2024-03-01T14:30:02+00:00"]
    # approvals at 14:30:00 and :02; at :59 both are inside the trailing minute, at 14:31:00.5 one is
    t0 = history.approvals["a-1"]
    import datetime as dt

    start = dt.datetime.fromisoformat(t0.decided_at).timestamp()
    assert history.recent(start + 59) == 2 and history.recent(start + 60.5) == 1


def test_approval_history_when_caught_up_twice_then_reads_only_what_was_appended(logged, make_gate):
    history = ApprovalHistory(logged, own_prefix="not-a-prefix-", window_s=60.0, keep_times=100)
    history.catch_up()
    make_gate().decide(buy("AAPL", 1, 100.0, client_order_id="a-4"), make_book())
    history.catch_up()
    history.catch_up()
    assert set(history.approvals) == {"a-1", "a-3", "a-4"} and len(history._times) == 3


def test_audit_log_when_batch_appended_then_lines_in_order(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl", fsync=True)
    log.append(b'{"n":1}\n')
    log.append_many([b'{"n":2}\n', b'{"n":3}\n'])
    log.close()
    assert (tmp_path / "a.jsonl").read_text() == '{"n":1}\n{"n":2}\n{"n":3}\n'


def test_audit_log_when_folder_missing_then_append_fails_and_creates_nothing(tmp_path):
    log = AuditLog(tmp_path / "gone" / "a.jsonl")
    with pytest.raises(FileNotFoundError):
        log.append(b"{}\n")
    assert not (tmp_path / "gone").exists()


def test_read_audit_log_when_no_log_then_empty_frame_with_columns(state):
    frame = read_audit_log(state)
    assert frame.empty and {"decided_at", "approved", "reason"} <= set(frame.columns)
