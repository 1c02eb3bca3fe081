from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from kobe_pipelines.errors import RecordError, StateFileError
from kobe_pipelines.risk.drawdown import DrawdownMonitor, HighWaterMarkStore
from kobe_pipelines.risk.kill_switch import KillSwitch
from kobe_pipelines_tests.risk.conftest import FakeClock, buy, check, make_book
from kobe_pipelines_tests.support.hostile_files import NOT_REGULAR, WORDS, place


@pytest.fixture
def alerts():
    return []


@pytest.fixture
def monitor(state, alerts):
    return DrawdownMonitor(state, max_drawdown=0.15, alert=lambda subject, body: alerts.append((subject, body)),
                           clock=FakeClock())


def test_update_when_equity_rises_then_high_water_mark_follows_and_is_persisted(monitor, state):
    monitor.update(100_000.0, "2024-01-02")
    status = monitor.update(120_000.0, "2024-01-03")
    assert (status.high_water_mark, status.drawdown, status.halted) == (120_000.0, 0.0, False)
    stored = json.loads((state / "high_water_mark.json").read_text())
    assert stored["high_water_mark"] == 120_000.0 and stored["high_water_mark_as_of"] == "2024-01-03"


def test_update_when_drawdown_below_limit_then_no_halt(monitor, alerts):
    monitor.update(100_000.0, "2024-01-02")
    status = monitor.update(85_001.0, "2024-01-03")  # (100,000 - 85,001) / 100,000 = 14.999 %
    assert status.halted is False and alerts == []
    assert status.drawdown == pytest.approx(0.14999)


def test_update_when_drawdown_reaches_exactly_15_percent_then_engages_halt_with_figure_and_alerts_once(monitor, alerts, state):
    monitor.update(100_000.0, "2024-01-02")
    status = monitor.update(85_000.0, "2024-01-03")  # (100,000 - 85,000) / 100,000 = 15.00 %
    assert status.halted and status.engaged_now
    switch = KillSwitch(state).status()
    assert switch.halted and "15.00%" in switch.reason and "100,000.00" in switch.reason
    assert len(alerts) == 1 and "15.00%" in alerts[0][1]
    again = monitor.update(80_000.0, "2024-01-04")  # 20 %: still halted, no second alert
    assert again.halted and not again.engaged_now and len(alerts) == 1


def test_update_when_equity_recovers_after_halt_then_halt_stays_latched(monitor, state):
    monitor.update(100_000.0, "2024-01-02")
    monitor.update(80_000.0, "2024-01-03")
    status = monitor.update(101_000.0, "2024-01-04")  # a new peak: drawdown 0 %
    assert status.drawdown == 0.0 and status.halted
    assert KillSwitch(state).status().halted


def test_update_when_halt_cleared_without_rebase_then_next_update_halts_again(monitor, state, alerts):
    monitor.update(100_000.0, "2024-01-02")
    monitor.update(84_000.0, "2024-01-03")
    KillSwitch(state).clear("looked at it", "ops")
    assert monitor.update(84_500.0, "2024-01-04").engaged_now  # still 15.5 % below the peak
    assert len(alerts) == 2


def test_rebase_when_person_resumes_after_drawdown_then_peak_is_reset_and_logged(monitor, state):
    monitor.update(100_000.0, "2024-01-02")
    monitor.update(84_000.0, "2024-01-03")
    monitor.rebase(84_000.0, "resume at today's equity", "ops")
    KillSwitch(state).clear("resume", "ops")
    status = monitor.update(83_000.0, "2024-01-04")  # (84,000 - 83,000) / 84,000 = 1.19 %
    assert not status.halted and status.drawdown == pytest.approx(1_000 / 84_000)
    assert KillSwitch(state).history()[-2]["event"] == "rebase_high_water_mark"


def test_alert_when_alert_channel_raises_then_halt_still_engaged(state):
    def broken(subject, body):
        raise ConnectionError("smtp down")

    monitor = DrawdownMonitor(state, alert=broken)
    monitor.update(100.0, "d1")
    assert monitor.update(50.0, "d2").halted and KillSwitch(state).status().halted


def test_default_alert_when_halting_then_logs_critical(state, caplog):
    monitor = DrawdownMonitor(state)
    monitor.update(100.0, "d1")
    monitor.update(80.0, "d2")
    assert any(r.levelname == "CRITICAL" and "20.00%" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("equity", [float("nan"), float("inf"), -1.0, "100", None, True])
def test_update_when_equity_is_not_a_finite_non_negative_amount_then_record_error_names_equity(monitor, equity, state):
    with pytest.raises(RecordError) as caught:
        monitor.update(equity, "2024-01-02")
    assert caught.value.field == "equity"
    assert not (state / "high_water_mark.json").exists()


@pytest.mark.parametrize(("content", "problem"), [
    ("", "is empty"),
    ("{not json", "is not valid JSON"),
    ('{"high_water_mark": -5, "last_equity": 1}', "field 'high_water_mark'"),
    ('{"high_water_mark": 100.0, "last_equity": 90.0}', "field 'high_water_mark_as_of'"),
    ('{"high_water_mark": "NaN", "last_equity": 90.0}', "field 'high_water_mark'"),
])
def test_update_when_hwm_file_is_empty_or_corrupt_then_halts_with_reason_and_keeps_the_file(monitor, state, alerts, content, problem):
    path = state / "high_water_mark.json"
    path.write_text(content)
    status = monitor.update(90_000.0, "2024-01-02")
    assert status.halted and status.engaged_now and status.drawdown is None
    reason = KillSwitch(state).status().reason
    assert "high-water mark unusable" in reason and problem in reason
    assert path.read_text() == content  # never overwritten by an update
    assert len(alerts) == 1


def test_update_when_hwm_path_is_a_directory_then_halts(monitor, state):
    (state / "high_water_mark.json").mkdir()
    assert monitor.update(90_000.0, "2024-01-02").halted
    assert "is a directory, not a regular file" in KillSwitch(state).status().reason


def test_update_when_state_folder_missing_then_halts_instead_of_starting_a_fresh_peak(tmp_path):
    folder = tmp_path / "mistyped"
    status = DrawdownMonitor(folder).update(100_000.0, "2024-01-02")
    assert status.halted and "does not exist" in status.reason
    assert KillSwitch(folder).status().halted and not (folder / "high_water_mark.json").exists()


def test_store_read_when_file_corrupt_then_state_file_error_names_the_file(state):
    (state / "high_water_mark.json").write_text("[]")
    with pytest.raises(StateFileError, match="high_water_mark.json"):
        HighWaterMarkStore(state).read()


def test_restart_when_a_new_process_reads_the_state_then_peak_and_halt_survive(state, monitor):
    monitor.update(200_000.0, "2024-01-02")
    monitor.update(150_000.0, "2024-01-03")  # 25 % below the peak: halted
    code = (
        "import json, sys\n"
        "from kobe_pipelines.risk import Book, DrawdownMonitor, KillSwitch, OrderIntent, PolicyGate, RiskLimits, Side\n"
        "state = sys.argv[1]\n"
        "m = DrawdownMonitor(state).update(190_000.0, '2024-01-04')\n"
        "book = Book(190_000.0, 190_000.0, 190_000.0, {}, {'AAPL': 100.0})\n"
        "d = PolicyGate(RiskLimits(), state).decide(OrderIntent('r-1', 'AAPL', Side.BUY, 10, 100.0, 95.0), book)\n"
        "print(json.dumps({'pid': __import__('os').getpid(), 'hwm': m.high_water_mark, 'drawdown': m.drawdown,\n"
        "                  'halted': KillSwitch(state).status().halted, 'approved': d.approved,\n"
        "                  'failed': [c.name for c in d.failures]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(state)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["pid"] != os.getpid()
    # The new process keeps the 200,000 peak: 190,000 is (200,000 - 190,000) / 200,000 = 5 % down,
    # yet the halt engaged by the first process is still in force and the gate refuses new risk.
    assert seen["hwm"] == 200_000.0 and math.isclose(seen["drawdown"], 0.05)
    assert seen["halted"] is True and seen["approved"] is False and seen["failed"] == ["halted"]


def test_update_when_called_then_each_reading_is_appended_to_the_equity_log(monitor, state):
    from kobe_pipelines.risk.drawdown import read_equity_log

    monitor.update(100_000.0, "2024-01-02")
    monitor.update(90_000.0, "2024-01-03")
    monitor.update(84_000.0, "2024-01-04")
    frame = read_equity_log(state)
    assert frame["equity"].tolist() == [100_000.0, 90_000.0, 84_000.0]
    assert frame["high_water_mark"].tolist() == [100_000.0] * 3
    # 0 %, (100,000 - 90,000) / 100,000 = 10 %, 16 % (halted)
    assert frame["drawdown"].tolist() == pytest.approx([0.0, 0.10, 0.16])
    assert frame["halted"].tolist() == [False, False, True]


def _mark(**fields) -> str:
    mark = {"high_water_mark": 100_000.0, "high_water_mark_as_of": "2024-01-02", "last_equity": 100_000.0,
            "last_as_of": "2024-01-02", "updated_at": "2024-01-02T21:00:00+00:00"}
    mark.update(fields)
    return json.dumps(mark)


@pytest.mark.parametrize(("content", "problem"), [
    # 400 digits: a valid JSON number that float() cannot hold (an OverflowError escaped the monitor)
    (_mark().replace("100000.0, \"high", "1" + "0" * 400 + ", \"high"), "field 'high_water_mark' is too large"),
    (_mark(high_water_mark=50_000.0, last_equity=90_000.0), "field 'high_water_mark' (50000.0) is below field 'last_equity'"),
    (_mark()[:-1] + ', "high_water_mark": 1.0}', "field 'high_water_mark' appears more than once"),
    ("high_water_mark,last_equity\n50000.0,50000.0\n", "is not valid JSON"),  # a lower mark in CSV
])
def test_update_when_hwm_written_over_with_an_unusable_mark_then_halts_naming_file_and_field(
        monitor, state, alerts, content, problem):
    path = state / "high_water_mark.json"
    path.write_text(content)
    status = monitor.update(90_000.0, "2024-01-03")
    assert status.halted and status.engaged_now
    reason = KillSwitch(state).status().reason
    assert str(path) in reason and problem in reason
    assert path.read_text() == content and len(alerts) == 1


def test_gate_when_hwm_written_over_with_a_mark_below_last_equity_then_still_refuses(monitor, make_gate, state):
    monitor.update(100_000.0, "2024-01-02")
    gate = make_gate()
    assert check(gate.decide(buy("AAPL", 10, 100.0), make_book(equity=80_000.0)), "drawdown").passed is False
    (state / "high_water_mark.json").write_text(_mark(high_water_mark=1.0))  # mark 1 USD, last equity 100,000
    refused = check(gate.decide(buy("AAPL", 10, 100.0), make_book(equity=80_000.0)), "drawdown")
    assert not refused.passed and "field 'high_water_mark' (1.0) is below field 'last_equity'" in refused.reason


def test_gate_when_hwm_deleted_while_equity_log_holds_readings_then_drawdown_check_refuses(monitor, make_gate, state):
    monitor.update(100_000.0, "2024-01-02")
    (state / "high_water_mark.json").unlink()
    result = check(make_gate().decide(buy("AAPL", 10, 100.0), make_book(equity=80_000.0)), "drawdown")
    assert not result.passed and "is missing although equity_log.jsonl holds equity readings" in result.reason


def test_update_when_hwm_deleted_while_equity_log_holds_readings_then_halts_instead_of_a_new_lower_peak(monitor, state):
    monitor.update(100_000.0, "2024-01-02")
    (state / "high_water_mark.json").unlink()
    status = monitor.update(80_000.0, "2024-01-03")
    assert status.halted and status.high_water_mark is None
    assert not (state / "high_water_mark.json").exists()  # not restarted at 80,000


def test_rebase_when_hwm_deleted_with_history_then_repairs_it(monitor, state):
    monitor.update(100_000.0, "2024-01-02")
    (state / "high_water_mark.json").unlink()
    monitor.rebase(80_000.0, "mark lost; reset by hand", "ops")
    assert HighWaterMarkStore(state).read().high_water_mark == 80_000.0


@pytest.mark.timeout(20)  # a FIFO opened for reading would wait for a writer forever
@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_gate_when_hwm_path_is_not_a_regular_file_then_drawdown_check_refuses_promptly(make_gate, state, kind):
    place(kind, state / "high_water_mark.json", _mark(high_water_mark=1.0, last_equity=1.0).encode())
    result = check(make_gate().decide(buy("AAPL", 10, 100.0), make_book()), "drawdown")
    assert not result.passed and WORDS[kind] in result.reason


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["fifo", "dangling symlink", "directory"])
def test_update_when_equity_log_is_not_a_regular_file_then_halts_promptly_naming_it(monitor, state, kind):
    place(kind, state / "equity_log.jsonl")
    status = monitor.update(100_000.0, "2024-01-02")
    assert status.halted and "equity_log.jsonl: " + WORDS[kind] in KillSwitch(state).status().reason


@pytest.mark.parametrize("durable, syncs", [(True, True), (False, False)])
def test_update_when_durable_or_not_then_same_files_written_and_fsync_only_when_durable(tmp_path, monkeypatch, durable, syncs):
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    folder = tmp_path / f"state-{durable}"
    folder.mkdir()
    monitor = DrawdownMonitor(folder, max_drawdown=0.15, clock=FakeClock(), durable=durable)
    monitor.update(100_000.0, "2024-01-02")
    status = monitor.update(90_000.0, "2024-01-03")
    assert (status.high_water_mark, status.drawdown, status.halted) == (100_000.0, pytest.approx(0.10), False)
    stored = json.loads((folder / "high_water_mark.json").read_text())
    assert (stored["high_water_mark"], stored["last_equity"]) == (100_000.0, 90_000.0)
    log = [json.loads(line) for line in (folder / "equity_log.jsonl").read_text().splitlines()]
    assert [(r["as_of"], r["equity"]) for r in log] == [("2024-01-02", 100_000.0), ("2024-01-03", 90_000.0)]
    assert bool(calls) is syncs
    assert not list(folder.glob(".*.tmp"))  # the mark replaced by rename: no temporary file left behind
