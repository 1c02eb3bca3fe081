"""`kobe halt ...` and `kobe risk log` (kobe_pipelines/cli/risk_cmds.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from click.testing import CliRunner

from kobe_pipelines.cli.risk_cmds import halt, refused_value, risk
from kobe_pipelines.risk import DrawdownMonitor, KillSwitch
from kobe_pipelines_tests.support.readable import assert_readable
from kobe_pipelines_tests.risk.conftest import buy, make_book
from kobe_pipelines_tests.support.cli_process import kobe


def run(group, *args):
    return CliRunner().invoke(group, list(args), catch_exceptions=False)


def test_halt_status_when_not_engaged_then_says_trading_allowed_never_active_and_exits_0(state):
    result = run(halt, "status", "--state", str(state))
    assert result.exit_code == 0 and result.output.startswith("TRADING ALLOWED: kill switch not engaged")
    assert "ACTIVE" not in result.output


def test_halt_engage_then_status_prints_halted_since_when_by_whom_and_why(state):
    assert run(halt, "engage", "--reason", "broker outage", "--by", "alice", "--state", str(state)).exit_code == 0
    at = KillSwitch(state).status().engaged_at
    result = run(halt, "status", "--state", str(state))
    assert result.exit_code == 0
    assert result.output.startswith(f"HALTED since {at} by alice because: broker outage\n")


def test_halt_status_when_state_folder_comes_from_env_then_uses_it(state):
    KillSwitch(state).engage("from env", "x")  # the root conftest points KOBE_STATE_DIR at tmp_path/state
    assert run(halt, "status").output.startswith("HALTED since ") and "because: from env" in run(halt, "status").output


def test_halt_status_when_switch_corrupt_then_prints_halted_fail_closed(state):
    (state / "KILL_SWITCH").write_text("{")
    assert run(halt, "status", "--state", str(state)).output.startswith("HALTED because: fail-closed")


def test_halt_clear_when_engaged_then_active_and_logged(state):
    KillSwitch(state).engage("x", "y")
    result = run(halt, "clear", "--reason", "fixed", "--by", "bob", "--state", str(state))
    assert result.exit_code == 0 and result.output.startswith("TRADING ALLOWED")
    assert KillSwitch(state).history()[-1]["by"] == "bob"


def test_halt_clear_when_reason_missing_then_refuses(state):
    KillSwitch(state).engage("x", "y")
    result = CliRunner().invoke(halt, ["clear", "--state", str(state)])
    assert result.exit_code != 0 and "--reason" in result.output
    assert KillSwitch(state).status().halted


def test_halt_clear_with_rebase_when_after_drawdown_then_peak_reset_to_last_equity(state):
    monitor = DrawdownMonitor(state)
    monitor.update(100_000.0, "d1")
    monitor.update(80_000.0, "d2")  # 20 %: halted
    result = run(halt, "clear", "--reason", "resume", "--rebase-hwm", "--state", str(state))
    assert result.exit_code == 0 and "rebased to 80,000.00 USD" in result.output
    assert not monitor.update(79_000.0, "d3").halted  # 1.25 % below the new peak


def test_halt_status_when_hwm_recorded_then_prints_drawdown(state):
    monitor = DrawdownMonitor(state)
    monitor.update(100_000.0, "d1")
    monitor.update(95_000.0, "d2")
    assert "drawdown 5.00%" in run(halt, "status", "--state", str(state)).output


def test_risk_log_when_decisions_logged_then_one_row_each_with_its_reason_under_it(make_gate, state):
    gate = make_gate()
    gate.decide(buy("AAPL", 10, 100.0, client_order_id="ok-1"), make_book())
    gate.decide(buy("AAPL", 10, float("nan"), client_order_id="bad-1"), make_book())
    result = run(risk, "log", "--state", str(state))
    lines = result.output.splitlines()
    assert result.exit_code == 0
    assert lines[0].split() == ["decided", "(UTC)", "decision", "client", "order", "id", "order", "entry"]
    assert lines[2].split()[2:] == ["APPROVED", "ok-1", "buy", "10", "AAPL", "100.00"]
    assert lines[3] == "  approved" and lines[4] == ""
    assert lines[5].split()[2:] == ["REJECTED", "bad-1", "buy", "10", "AAPL", "NaN"]  # the refused raw value
    assert lines[6].startswith("  ") and "field 'entry'" in " ".join(lines[6:])
    assert max(len(line) for line in lines) <= 100
    one = run(risk, "log", "--limit", "1", "--state", str(state)).output
    assert "bad-1" in one and "ok-1" not in one
    assert "ok-1" not in run(risk, "log", "--rejected", "--state", str(state)).output


def test_risk_log_when_intents_carry_numpy_values_and_a_long_id_then_readable_within_100_columns(make_gate, state):
    gate = make_gate()
    gate.decide(buy("AAPL", np.int64(10), np.float64(100.123), client_order_id="x" * 48), make_book())
    output = run(risk, "log", "--state", str(state)).output
    assert_readable(output)
    assert "x" * 48 in output  # the client order id is never broken


@pytest.mark.parametrize(("logged", "shown"), [
    ("nan", "NaN"), ("np.float64(nan)", "NaN"), ("np.int64(7)", "7"), ("-3", "-3"), ("inf", "inf"),
    ("None", "(missing)"), ("'abc'", "'abc'"),
])
def test_refused_value_when_audit_log_holds_a_repr_then_plain_words(logged, shown):
    assert refused_value(logged) == shown


def test_risk_log_when_no_log_then_says_so(state):
    assert run(risk, "log", "--state", str(state)).output.strip() == "no decisions logged"


def test_halt_status_when_kill_switch_is_a_fifo_then_returns_promptly_and_reports_halted(state):
    os.mkfifo(state / "KILL_SWITCH")
    result = kobe("halt", "status")  # hung forever before: opening a FIFO for reading waits for a writer
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"HALTED because: fail-closed: kill switch {state / 'KILL_SWITCH'} is a FIFO")


def test_halt_status_when_kill_switch_is_a_dangling_symlink_then_reports_halted(state):
    (state / "KILL_SWITCH").symlink_to(state / "gone")
    assert run(halt, "status").output.startswith("HALTED because: fail-closed: kill switch")


def test_halt_status_when_hwm_is_unusable_then_says_new_risk_is_refused(state):
    (state / "high_water_mark.json").symlink_to(state / "gone")
    assert "high-water mark: UNUSABLE, new risk is refused" in run(halt, "status").output


def test_halt_engage_when_state_folder_is_a_file_then_one_line_error_says_not_engaged(tmp_path):
    (tmp_path / "notafolder").write_text("x")
    result = CliRunner().invoke(halt, ["engage", "--reason", "r", "--state", str(tmp_path / "notafolder" / "state")])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith("error: the kill switch was NOT engaged by this command: ")


def test_halt_clear_when_hwm_deleted_and_rebase_without_equity_then_one_line_naming_the_fix(state):
    monitor = DrawdownMonitor(state)
    monitor.update(100_000.0, "d1")
    (state / "high_water_mark.json").unlink()
    result = CliRunner().invoke(halt, ["clear", "--reason", "r", "--rebase-hwm"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "kobe halt clear --rebase-hwm --equity USD" in result.output


@pytest.mark.timeout(20)  # appending to a FIFO without a reader would wait forever
def test_halt_engage_when_the_halt_log_is_a_fifo_then_halted_alerted_and_exit_1_naming_the_log(state):
    os.mkfifo(state / "halt_log.jsonl")
    result = CliRunner().invoke(halt, ["engage", "--reason", "outage", "--by", "alice"])
    assert result.exit_code == 1 and result.stdout.startswith("HALTED since ")
    assert result.stderr.startswith("error: the kill switch is engaged, but the halt could not be logged: state file "
                                    f"{state / 'halt_log.jsonl'}: is a FIFO")
    assert KillSwitch(state).status().reason == "outage"
    assert "Trading halted by alice: outage" in (state / "alerts.jsonl").read_text()
