from __future__ import annotations

import json
import os
import re

import pytest

from kobe_pipelines.regular_files import NotRegularFileError
from kobe_pipelines.risk.jsonl import TornLineWarning, append_record, iter_records, repair_torn_tail
from kobe_pipelines_tests.risk.conftest import buy, check, make_book
from kobe_pipelines_tests.support.hostile_files import NOT_REGULAR, WORDS, place


def test_iter_records_when_last_line_is_torn_then_skips_it_with_warning_and_keeps_the_rest(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"n": 1}\n{"n": 2}\n{"n": 3, "tru')
    with pytest.warns(TornLineWarning, match="no newline"):
        records = list(iter_records(path))
    assert records == [{"n": 1}, {"n": 2}]


def test_iter_records_when_a_middle_line_is_corrupt_then_skips_only_that_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"n": 1}\nnot json\n{"n": 3}\n')
    with pytest.warns(TornLineWarning, match="line 2"):
        assert list(iter_records(path)) == [{"n": 1}, {"n": 3}]


def test_iter_records_when_file_missing_then_yields_nothing(tmp_path):
    assert list(iter_records(tmp_path / "none.jsonl")) == []


def test_append_record_when_tail_is_torn_then_moves_fragment_aside_and_appends_a_clean_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"n": 1}\n{"n": 2, "tr')
    append_record(path, {"n": 3})
    assert path.read_text() == '{"n": 1}\n{"n": 3}\n'
    sides = list(tmp_path.glob("log.jsonl.torn-*"))
    assert len(sides) == 1 and sides[0].read_text() == '{"n": 2, "tr'


def test_repair_torn_tail_when_file_ends_cleanly_then_changes_nothing(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"n": 1}\n')
    assert repair_torn_tail(path) is None and path.read_text() == '{"n": 1}\n'


def test_repair_torn_tail_when_whole_file_is_one_fragment_then_empties_it(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"n": 1')
    side = repair_torn_tail(path)
    assert path.read_text() == "" and side.read_text() == '{"n": 1'


def test_append_record_when_folder_missing_then_raises_instead_of_creating_it(tmp_path):
    with pytest.raises(FileNotFoundError):
        append_record(tmp_path / "missing" / "log.jsonl", {"n": 1})
    assert not (tmp_path / "missing").exists()


def test_append_record_when_called_twice_then_one_json_object_per_line(tmp_path):
    path = tmp_path / "log.jsonl"
    append_record(path, {"a": 1})
    append_record(path, {"b": "two"})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"a": 1}, {"b": "two"}]


@pytest.mark.timeout(20)  # a FIFO would block a reader or a writer forever
@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_iter_records_and_append_record_when_log_path_is_not_a_regular_file_then_refuse_promptly(tmp_path, kind):
    path = tmp_path / "halt_log.jsonl"
    place(kind, path, b'{"event": "engage"}\n')
    with pytest.raises(NotRegularFileError, match=re.escape(WORDS[kind])):
        list(iter_records(path))
    with pytest.raises(NotRegularFileError, match=re.escape(WORDS[kind])):
        append_record(path, {"event": "clear"})
    if kind == "symlink to a valid file":
        assert (tmp_path / "halt_log.jsonl.link-target").read_bytes() == b'{"event": "engage"}\n'


@pytest.mark.timeout(20)
def test_gate_when_audit_log_is_a_fifo_then_decides_promptly_and_rejects(make_gate, state):
    os.mkfifo(state / "risk_audit.jsonl")
    gate = make_gate()
    decision = gate.decide(buy("AAPL", 10, 100.0), make_book())
    assert not decision.approved
    assert "risk_audit.jsonl: is a FIFO" in check(decision, "audit_log").reason
    assert "duplicates cannot be ruled out" in check(decision, "duplicate_id").reason
