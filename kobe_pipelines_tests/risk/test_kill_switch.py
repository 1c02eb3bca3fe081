from __future__ import annotations

import json
import os

import pytest

from kobe_pipelines.errors import RecordError, StateFileError
from kobe_pipelines.risk.kill_switch import KillSwitch
from kobe_pipelines_tests.risk.conftest import T0, FakeClock, buy, check, make_book
from kobe_pipelines_tests.support.hostile_files import NOT_REGULAR, WORDS, place


def test_status_when_state_folder_readable_and_no_switch_file_then_not_halted(state):
    status = KillSwitch(state).status()
    assert status.halted is False and status.fail_closed is False


def test_engage_when_called_then_file_holds_reason_time_and_who(state):
    switch = KillSwitch(state, clock=FakeClock())
    switch.engage("broker outage", "alice")
    data = json.loads((state / "KILL_SWITCH").read_text())
    assert data == {"reason": "broker outage", "engaged_at": "2024-03-01T14:30:00+00:00", "engaged_by": "alice"}
    status = switch.status()
    assert (status.halted, status.reason, status.engaged_at, status.engaged_by) == (
        True, "broker outage", T0.isoformat(), "alice")


def test_engage_when_written_then_no_temporary_file_is_left(state):
    KillSwitch(state).engage("x", "y")
    assert sorted(p.name for p in state.iterdir()) == ["KILL_SWITCH", "halt_log.jsonl"]


def test_clear_when_engaged_then_resumes_and_logs_both_events_with_what_was_cleared(state):
    switch = KillSwitch(state)
    switch.engage("broker outage", "alice")
    status = switch.clear("broker back", "bob")
    assert status.halted is False and not (state / "KILL_SWITCH").exists()
    events = switch.history()
    assert [(e["event"], e["by"], e["reason"]) for e in events] == [("engage", "alice", "broker outage"),
                                                                    ("clear", "bob", "broker back")]
    assert events[1]["cleared"]["reason"] == "broker outage"


def test_status_when_switch_file_replaced_then_new_content_is_seen(state):
    switch = KillSwitch(state)
    switch.engage("first", "a")
    assert switch.status().reason == "first"  # now cached
    switch.engage("second", "a")
    assert switch.status().reason == "second"
    (state / "KILL_SWITCH").write_text("")  # edited in place, same inode
    assert switch.status().fail_closed


@pytest.mark.parametrize(("content", "problem"), [
    ("", "is empty"),
    ("   \n", "is empty"),
    ('{"reason": "x", "engaged_', "is not valid JSON"),
    ("[1, 2]", "is not a JSON object"),
    ('{"reason": "drawdown 16%"}', "lacks field(s) engaged_at, engaged_by"),
    ('{"reason": "", "engaged_at": "t", "engaged_by": "b"}', "lacks field(s) reason"),
    (b"\xff\xfe".decode("latin-1"), "is not UTF-8 text"),
])
def test_status_when_switch_file_is_empty_or_corrupt_then_halted_with_clear_reason(state, content, problem):
    path = state / "KILL_SWITCH"
    if content == b"\xff\xfe".decode("latin-1"):
        path.write_bytes(b"\xff\xfe")  # not UTF-8
    else:
        path.write_text(content)
    status = KillSwitch(state).status()
    assert status.halted and status.fail_closed
    assert status.reason.startswith("fail-closed: kill switch") and problem in status.reason


def test_status_when_switch_path_is_a_directory_then_halted(state):
    (state / "KILL_SWITCH").mkdir()
    status = KillSwitch(state).status()
    assert status.halted and status.fail_closed and "is a directory, not a regular file" in status.reason


def test_status_when_state_folder_missing_then_halted(tmp_path):
    status = KillSwitch(tmp_path / "nowhere").status()
    assert status.halted and status.fail_closed and "does not exist" in status.reason


def test_status_when_state_path_is_a_file_then_halted(tmp_path):
    (tmp_path / "state").write_text("oops")
    status = KillSwitch(tmp_path / "state").status()
    assert status.halted and status.fail_closed


def test_clear_when_switch_file_corrupt_then_explicit_clear_resumes_and_logs_the_problem(state):
    (state / "KILL_SWITCH").write_text("{garbage")
    switch = KillSwitch(state)
    assert switch.clear("inspected, file was garbage", "carol").halted is False
    assert "not valid JSON" in switch.history()[-1]["cleared"]["reason"]


def test_clear_when_state_folder_missing_then_creates_it_and_resumes(tmp_path):
    switch = KillSwitch(tmp_path / "fresh")
    assert switch.status().halted
    assert switch.clear("first start of a new account", "ops").halted is False
    assert switch.history()[0]["event"] == "clear"


def test_status_when_nothing_clears_it_then_halt_latches_across_instances(state):
    KillSwitch(state).engage("drawdown", "monitor")
    assert KillSwitch(state).status().halted  # a fresh reader (like a restarted process) sees it


@pytest.mark.parametrize(("reason", "by", "field"), [("", "x", "reason"), ("  ", "x", "reason"), ("r", "", "engaged_by")])
def test_engage_when_reason_or_who_is_empty_then_record_error_names_the_field(state, reason, by, field):
    with pytest.raises(RecordError) as caught:
        KillSwitch(state).engage(reason, by)
    assert caught.value.field == field
    assert not (state / "KILL_SWITCH").exists()


ENGAGED = b'{"reason": "placed by a link", "engaged_at": "2024-03-01T14:30:00+00:00", "engaged_by": "mallory"}'


@pytest.mark.timeout(20)  # a FIFO opened for reading would wait for a writer forever
@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_status_when_switch_path_is_not_a_regular_file_then_halted_fail_closed_naming_what_is_there(state, kind):
    place(kind, state / "KILL_SWITCH", ENGAGED)
    status = KillSwitch(state).status()
    assert status.halted and status.fail_closed
    assert f"kill switch {state / 'KILL_SWITCH'} {WORDS[kind]}" in status.reason


def test_gate_when_kill_switch_is_a_dangling_symlink_then_new_orders_are_refused(make_gate, state):
    (state / "KILL_SWITCH").symlink_to(state / "deleted-switch")  # os.stat says "no such file": read as clear before
    decision = make_gate().decide(buy("AAPL", 10, 100.0), make_book())
    assert not decision.approved
    assert check(decision, "halted").reason.startswith("trading halted: fail-closed: kill switch")


def test_engage_when_switch_path_is_a_symlink_then_the_link_is_replaced_and_its_target_untouched(state):
    target = state.parent / "elsewhere.json"
    target.write_text("not mine")
    (state / "KILL_SWITCH").symlink_to(target)
    KillSwitch(state).engage("link found", "alice")
    assert not (state / "KILL_SWITCH").is_symlink() and target.read_text() == "not mine"
    status = KillSwitch(state).status()
    assert status.halted and not status.fail_closed and status.reason == "link found"


def test_engage_when_switch_path_is_a_directory_then_refuses_naming_it_and_status_stays_halted(state):
    (state / "KILL_SWITCH").mkdir()
    with pytest.raises(StateFileError, match="is a directory"):
        KillSwitch(state).engage("x", "y")
    assert KillSwitch(state).status().halted


@pytest.mark.timeout(20)
def test_engage_when_halt_log_is_a_fifo_then_refuses_the_log_promptly_but_trading_is_halted(state):
    os.mkfifo(state / "halt_log.jsonl")
    with pytest.raises(StateFileError, match="halt_log.jsonl: is a FIFO"):
        KillSwitch(state).engage("outage", "alice")
    assert KillSwitch(state).status().reason == "outage"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["fifo", "dangling symlink"])
def test_clear_when_switch_path_is_not_a_regular_file_then_explicit_clear_removes_it(state, kind):
    place(kind, state / "KILL_SWITCH")
    switch = KillSwitch(state)
    assert switch.clear("inspected", "carol").halted is False
    assert not os.path.lexists(state / "KILL_SWITCH")
    assert WORDS[kind] in switch.history()[-1]["cleared"]["reason"]
