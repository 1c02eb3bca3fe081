"""A manual halt or clear alerts at once without a daemon; `kobe alerts` lists, `kobe alerts flush`
mails (kobe_pipelines/cli/alerts_cmds.py, cli/risk_cmds.py), against a real SMTP server on loopback."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from kobe_pipelines.alerts import Delivery, alert_history, read_alert_log
from kobe_pipelines.cli import main
from kobe_pipelines_tests.alerts.conftest import SMTP_PASSWORD, SMTP_USER
from kobe_pipelines_tests.support.cli_process import cli_state
from kobe_pipelines_tests.support.readable import assert_readable


@pytest.fixture
def state(tmp_path, monkeypatch):
    return cli_state(tmp_path, monkeypatch)


def mail_to(monkeypatch, host: str, port: int, cafile) -> None:
    for name, value in {"KOBE_SMTP_HOST": host, "KOBE_SMTP_PORT": str(port), "KOBE_SMTP_USER": SMTP_USER,
                        "KOBE_SMTP_PASSWORD": SMTP_PASSWORD, "KOBE_ALERT_FROM": "robot@kobe.test",
                        "KOBE_ALERT_TO": "ops@kobe.test", "KOBE_SMTP_CAFILE": str(cafile)}.items():
        monkeypatch.setenv(name, value)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed: connection refused


def kobe(*args: str):
    return CliRunner().invoke(main, list(args))


def test_halt_engage_when_mail_is_off_then_a_critical_alert_is_recorded_at_once(state):
    result = kobe("halt", "engage", "--reason", "broker outage", "--by", "alice")
    assert result.exit_code == 0 and result.stderr == ""
    [alert] = read_alert_log(state / "alerts.jsonl")
    assert (alert.kind, alert.severity.value, alert.subject) == ("halt", "critical", "Trading halted by alice: broker outage")
    assert "reason: broker outage" in alert.body and "by: alice" in alert.body
    assert result.stdout.splitlines()[-1] == (f"alert: recorded in {state / 'alerts.jsonl'}; "
                                             "mail is off: KOBE_SMTP_HOST is not set")


def test_halt_clear_when_mail_is_off_then_a_critical_alert_names_who_and_what_was_cleared(state):
    kobe("halt", "engage", "--reason", "broker outage", "--by", "alice")
    result = kobe("halt", "clear", "--reason", "broker back", "--by", "bob")
    assert result.exit_code == 0 and result.stdout.startswith("TRADING ALLOWED")
    cleared = read_alert_log(state / "alerts.jsonl")[-1]
    assert (cleared.kind, cleared.severity.value, cleared.subject) == (
        "halt_cleared", "critical", "Trading resumed by bob: broker back")
    assert "because: broker outage" in cleared.body  # the halt that was cleared


def test_halt_engage_when_smtp_configured_then_the_mail_is_delivered_before_the_command_returns(
        state, smtp_server, monkeypatch):
    mail_to(monkeypatch, smtp_server.host, smtp_server.port, smtp_server.cafile)
    result = kobe("halt", "engage", "--reason", "broker outage", "--by", "alice")
    assert result.exit_code == 0 and result.stdout.splitlines()[-1] == "alert: mailed to ops@kobe.test"
    [got] = smtp_server.handler.received
    assert got.message["Subject"] == "[KOBE CRITICAL] Trading halted by alice: broker outage"
    assert got.tls and got.rcpt_tos == ["ops@kobe.test"]
    assert [e.delivery for e in alert_history(state)] == [Delivery.MAILED]


def test_halt_commands_when_a_halt_mail_went_out_moments_ago_then_each_new_one_still_leaves_at_once(
        state, smtp_server, monkeypatch):
    # Without a daemon nothing flushes later: the grouping window (300 s) must not hold these back.
    mail_to(monkeypatch, smtp_server.host, smtp_server.port, smtp_server.cafile)
    kobe("halt", "engage", "--reason", "first", "--by", "alice")
    kobe("halt", "engage", "--reason", "second", "--by", "alice")
    kobe("halt", "clear", "--reason", "all clear", "--by", "bob")
    assert [r.message["Subject"] for r in smtp_server.handler.received] == [
        "[KOBE CRITICAL] Trading halted by alice: first", "[KOBE CRITICAL] Trading halted by alice: second",
        "[KOBE CRITICAL] Trading resumed by bob: all clear"]


def test_alerts_flush_when_smtp_was_down_at_the_halt_then_delivers_the_queued_alert(state, smtp_server, monkeypatch):
    mail_to(monkeypatch, "127.0.0.1", closed_port(), smtp_server.cafile)
    engaged = kobe("halt", "engage", "--reason", "broker outage", "--by", "alice")
    assert engaged.exit_code == 0 and engaged.stdout.startswith("HALTED since ")  # the halt stands
    assert engaged.stderr.startswith("warning: alert not mailed yet (") and "kobe alerts flush" in engaged.stderr

    listed = kobe("alerts")
    lines = listed.stdout.splitlines()
    assert lines[2].split()[2:5] == ["CRITICAL", "halt", "queued"]  # the delivery wraps in its column
    assert "  Trading halted by alice: broker outage" in lines[3:]  # the subject under the row
    assert "1 failed attempt(s)" in " ".join(listed.stdout.split())
    assert listed.stdout.splitlines()[-1] == "queue: 1 alert(s) waiting; mail to ops@kobe.test"

    mail_to(monkeypatch, smtp_server.host, smtp_server.port, smtp_server.cafile)  # the server is back
    flushed = kobe("alerts", "flush")  # within the retry back-off: an explicit flush does not wait
    assert flushed.exit_code == 0, flushed.output
    assert flushed.stdout == "mailed 1 mail(s) carrying 1 alert(s) to ops@kobe.test; 0 left in the outbox\n"
    assert [r.message["Subject"] for r in smtp_server.handler.received] == [
        "[KOBE CRITICAL] Trading halted by alice: broker outage"]
    assert [e.delivery for e in alert_history(state)] == [Delivery.MAILED]
    assert "mailed 20" in kobe("alerts").stdout


def test_alerts_flush_when_server_still_refuses_then_exit_1_and_the_alert_stays_queued(state, smtp_server, monkeypatch):
    mail_to(monkeypatch, "127.0.0.1", closed_port(), smtp_server.cafile)
    kobe("halt", "engage", "--reason", "broker outage", "--by", "alice")
    result = kobe("alerts", "flush")
    assert result.exit_code == 1 and result.stderr.startswith("error: not delivered: mail ")
    assert [e.delivery for e in alert_history(state)] == [Delivery.QUEUED]


def test_alerts_flush_when_alerts_wait_but_mail_is_now_off_then_exit_1_naming_the_setting(state, smtp_server, monkeypatch):
    mail_to(monkeypatch, "127.0.0.1", closed_port(), smtp_server.cafile)
    kobe("halt", "engage", "--reason", "r", "--by", "a")
    monkeypatch.delenv("KOBE_SMTP_HOST")
    result = kobe("alerts", "flush")
    assert result.exit_code == 1
    assert result.stderr == "error: 1 alert(s) wait in the outbox but mail is off: KOBE_SMTP_HOST is not set " \
                            "(set it, then flush again)\n"


def test_alerts_when_nothing_recorded_then_says_so(state):
    result = kobe("alerts")
    assert result.exit_code == 0 and result.stdout == (
        f"no alerts recorded in {state}\nqueue: 0 alert(s) waiting; mail is off: KOBE_SMTP_HOST is not set\n")
    assert sorted(p.name for p in state.iterdir()) == []  # listing creates nothing


def test_halt_engage_when_smtp_misconfigured_then_halts_records_the_alert_and_warns_naming_the_setting(state, monkeypatch):
    monkeypatch.setenv("KOBE_SMTP_HOST", "smtp.example.com")  # KOBE_ALERT_FROM / KOBE_ALERT_TO missing
    result = kobe("halt", "engage", "--reason", "r", "--by", "a")
    assert result.exit_code == 0 and result.stdout.startswith("HALTED since ")
    assert result.stderr.startswith("warning: alert not mailed (setting 'KOBE_ALERT_FROM' is required")
    assert read_alert_log(state / "alerts.jsonl")[0].subject == "Trading halted by a: r"


def test_alerts_when_subject_is_long_then_listed_within_100_columns_with_the_whole_subject(state):
    reason = "the broker's gateway answers 503 on every order endpoint since the open; see the status page, then call"
    kobe("halt", "engage", "--reason", reason, "--by", "alice")
    listed = kobe("alerts").output
    assert_readable(listed)
    assert f"Trading halted by alice: {reason}" in " ".join(listed.split())  # 130 characters, wrapped, whole
