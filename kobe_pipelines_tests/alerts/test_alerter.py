from __future__ import annotations

import json
import logging
import socket
import threading
from datetime import timedelta

from kobe_pipelines.alerts import Alert, Alerter, EmailSink, RetryPolicy, build_alerter, read_alert_log
from kobe_pipelines.alerts.locks import try_exclusive
from kobe_pipelines_tests.alerts.conftest import SMTP_PASSWORD, SMTP_USER


def _rejected(n: int, clock) -> Alert:
    return Alert("order_rejected", f"SYM{n} buy 100 rejected", f"heat cap: 10.{n}% > 10%", created_at=clock())


def _halt(clock) -> Alert:
    return Alert("halt", "Drawdown halt engaged", "drawdown 15.2% >= 15%", severity="critical", created_at=clock())


def test_send_when_smtp_not_configured_then_alert_logged_and_recorded_in_state(tmp_path, caplog):
    alerter = build_alerter(environ={})  # KOBE_STATE_DIR points at tmp_path/state (root conftest)
    alert = Alert("data_check_failed", "check_adjusted_bars failed", "3 rows with high < low")

    with caplog.at_level(logging.INFO, logger="kobe_pipelines.alerts"):
        assert alerter.send(alert) is True
        report = alerter.flush()

    assert alerter.email_enabled is False and report.email_enabled is False and report.mails_sent == 0
    assert any("check_adjusted_bars failed" in r.getMessage() for r in caplog.records)
    assert read_alert_log(tmp_path / "state" / "alerts.jsonl") == [alert]
    assert not (tmp_path / "state" / "alert_outbox.jsonl").exists()


def test_build_alerter_when_smtp_host_set_then_mails_through_the_configured_server(smtp_server, tmp_path, clock):
    environ = {
        "KOBE_SMTP_HOST": smtp_server.host, "KOBE_SMTP_PORT": str(smtp_server.port),
        "KOBE_SMTP_USER": SMTP_USER, "KOBE_SMTP_PASSWORD": SMTP_PASSWORD,
        "KOBE_ALERT_FROM": "robot@kobe.test", "KOBE_ALERT_TO": "ops@kobe.test",
        "KOBE_SMTP_CAFILE": str(smtp_server.cafile),
    }
    alerter = build_alerter(tmp_path / "st", environ=environ, clock=clock)

    alerter.send(_halt(clock))
    report = alerter.flush()

    assert isinstance(alerter.transport, EmailSink)
    assert (report.mails_sent, report.alerts_sent, report.pending) == (1, 1, 0)
    [got] = smtp_server.handler.received
    assert got.message["Subject"] == "[KOBE CRITICAL] Drawdown halt engaged"
    assert got.rcpt_tos == ["ops@kobe.test"]
    assert read_alert_log(tmp_path / "st" / "alerts.jsonl")[0].kind == "halt"


def test_flush_when_five_rejections_within_window_then_exactly_one_mail_listing_all_five(
        smtp_server, tmp_path, clock):
    alerter = Alerter(smtp_server.settings(group_seconds=300), tmp_path, clock)
    for n in range(5):  # queued at t0, t0+10 s, ..., t0+40 s
        alerter.send(_rejected(n, clock))
        clock.advance(10)

    clock.advance(10)  # t0+60 s: the window opened by the first alert runs to t0+300 s
    early = alerter.flush()
    clock.advance(240)  # t0+300 s
    due = alerter.flush()
    again = alerter.flush()

    assert (early.mails_sent, early.pending) == (0, 5)
    assert (due.mails_sent, due.alerts_sent, due.pending) == (1, 5, 0)
    assert again.mails_sent == 0
    [got] = smtp_server.handler.received
    assert got.message["Subject"] == "[KOBE WARNING] 5 x order_rejected: SYM0 buy 100 rejected (+4 more)"
    body = got.message.get_content()
    for n in range(5):
        assert f"{n + 1}. [warning] order_rejected" in body
        assert f"SYM{n} buy 100 rejected" in body and f"heat cap: 10.{n}% > 10%" in body
    assert len(read_alert_log(tmp_path / "alerts.jsonl")) == 5  # every alert is also on record


def test_flush_when_critical_then_sent_at_once_and_repeats_within_window_grouped(smtp_server, tmp_path, clock):
    alerter = Alerter(smtp_server.settings(group_seconds=300), tmp_path, clock)
    alerter.send(_halt(clock))
    first = alerter.flush()  # t0: a critical alert does not wait for a window

    for _ in range(3):  # the drawdown sensor re-raises the halt at t0+10, +20, +30 s
        clock.advance(10)
        alerter.send(_halt(clock))
    clock.advance(10)
    held = alerter.flush()  # t0+40 s: within 300 s of the last halt mail
    clock.advance(260)
    digest = alerter.flush()  # t0+300 s

    assert (first.mails_sent, held.mails_sent, held.pending, digest.mails_sent) == (1, 0, 3, 1)
    subjects = [r.message["Subject"] for r in smtp_server.handler.received]
    assert subjects == ["[KOBE CRITICAL] Drawdown halt engaged",
                        "[KOBE CRITICAL] 3 x halt: Drawdown halt engaged (+2 more)"]


def test_flush_when_several_keys_due_then_one_mail_each_critical_first(smtp_server, tmp_path, clock):
    alerter = Alerter(smtp_server.settings(group_seconds=0), tmp_path, clock)
    alerter.send(_rejected(1, clock))
    alerter.send(Alert("run_failed", "Run daily_ingest failed", created_at=clock()))
    alerter.send(_halt(clock))

    report = alerter.flush()

    assert report.mails_sent == 3
    assert [r.message["X-KOBE-Alert-Key"] for r in smtp_server.handler.received] == [
        "halt", "order_rejected", "run_failed"]  # critical, then oldest queued first


def test_flush_when_server_refuses_then_alert_kept_backed_off_and_delivered_once_server_accepts(
        smtp_server, tmp_path, clock):
    alerter = Alerter(smtp_server.settings(), tmp_path, clock)  # RetryPolicy: 60 s, then 120 s ...
    smtp_server.handler.refuse = "550 5.7.1 Relaying denied"

    assert alerter.send(_halt(clock)) is True
    refused = alerter.flush()
    clock.advance(30)
    backing_off = alerter.flush()  # t0+30 s < t0+60 s: not tried again
    smtp_server.handler.refuse = None
    clock.advance(30)
    delivered = alerter.flush()  # t0+60 s

    assert refused.mails_sent == 0 and refused.pending == 1  # kept, not lost
    assert "550 5.7.1 Relaying denied" in refused.failures[0]
    assert (backing_off.mails_sent, backing_off.failures, smtp_server.handler.refused) == (0, (), 1)
    assert (delivered.mails_sent, delivered.pending) == (1, 0)
    assert [r.message["Subject"] for r in smtp_server.handler.received] == ["[KOBE CRITICAL] Drawdown halt engaged"]
    assert alerter.pending() == ()


def test_flush_when_server_never_answers_then_kept_and_delivered_later_by_a_new_process(
        smtp_server, silent_server, tmp_path, clock):
    dead = Alerter(smtp_server.settings(smtp_port=silent_server, timeout_seconds=0.2), tmp_path, clock)

    assert dead.send(_halt(clock)) is True
    timed_out = dead.flush()

    assert timed_out.mails_sent == 0 and "timed out" in timed_out.failures[0]
    assert [p.alert.subject for p in dead.pending()] == ["Drawdown halt engaged"]
    # A later run (a new Alerter on the same state folder) with a working server, after the back-off.
    clock.advance(60)
    report = Alerter(smtp_server.settings(), tmp_path, clock).flush()
    assert (report.mails_sent, report.pending) == (1, 0)
    assert smtp_server.handler.received[0].message["Subject"] == "[KOBE CRITICAL] Drawdown halt engaged"


def test_flush_when_nothing_listens_on_the_port_then_no_raise_and_alert_kept(smtp_server, tmp_path, clock):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: connection refused
    alerter = Alerter(smtp_server.settings(smtp_port=closed_port), tmp_path, clock)

    alerter.send(_halt(clock))
    report = alerter.flush()

    assert report.mails_sent == 0 and "ConnectionRefusedError" in report.failures[0]
    assert len(alerter.pending()) == 1


def test_flush_when_attempts_exhausted_then_alerts_moved_to_undeliverable_file(smtp_server, tmp_path, clock):
    retry = RetryPolicy(base_seconds=1, max_seconds=1, max_attempts=2)
    alerter = Alerter(smtp_server.settings(), tmp_path, clock, retry=retry)
    smtp_server.handler.refuse = "554 5.7.1 Message refused"
    alerter.send(_halt(clock))

    first = alerter.flush()
    clock.advance(1)
    second = alerter.flush()

    assert (first.undeliverable, first.pending) == (0, 1)
    assert (second.undeliverable, second.pending) == (1, 0)
    [line] = (tmp_path / "alert_undeliverable.jsonl").read_text().splitlines()
    kept = json.loads(line)
    assert kept["alert"]["subject"] == "Drawdown halt engaged" and kept["attempts"] == 2
    assert "554 5.7.1 Message refused" in kept["reason"]


def test_send_and_flush_when_auth_fails_then_password_never_in_logs_files_or_reports(
        echoing_smtp_server, tmp_path, clock, caplog):
    wrong = "Wrong-" + SMTP_PASSWORD
    alerter = Alerter(echoing_smtp_server.settings(smtp_password=wrong), tmp_path, clock)

    with caplog.at_level(logging.DEBUG, logger="kobe_pipelines"):
        alerter.send(_halt(clock))
        report = alerter.flush()

    assert "535" in report.failures[0]  # the failure is reported ...
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("kobe_pipelines"))
    assert "535 5.7.8 bad password ***" in ours  # ... with the echoed secret masked
    for text in (ours, repr(alerter), repr(alerter.settings), *report.failures,
                 *(p.read_text() for p in tmp_path.glob("*.jsonl"))):
        assert wrong not in text


def test_send_when_state_folder_unwritable_then_returns_false_without_raising(smtp_server, tmp_path, clock, caplog):
    blocker = tmp_path / "state-is-a-file"
    blocker.write_text("")
    alerter = Alerter(smtp_server.settings(), blocker, clock)

    with caplog.at_level(logging.ERROR, logger="kobe_pipelines.alerts"):
        sent = alerter.send(_halt(clock))
        report = alerter.flush()

    assert sent is False
    assert report.mails_sent == 0 and report.failures  # reported, not raised
    assert any("could not be written" in r.getMessage() for r in caplog.records)


def test_flush_when_outbox_has_a_corrupt_line_then_reported_and_the_rest_delivered(smtp_server, tmp_path, clock):
    alerter = Alerter(smtp_server.settings(), tmp_path, clock)
    alerter.send(_halt(clock))
    with open(tmp_path / "alert_outbox.jsonl", "a") as handle:
        handle.write('{"type": "pending", "alert": \n')

    report = alerter.flush()

    assert (report.corrupt_lines, report.mails_sent) == (1, 1)
    assert (tmp_path / "alert_outbox.corrupt.jsonl").read_text() == '{"type": "pending", "alert": \n'


def test_flush_when_another_flush_is_running_then_skipped_and_nothing_sent(smtp_server, tmp_path, clock):
    alerter = Alerter(smtp_server.settings(), tmp_path, clock)
    alerter.send(_halt(clock))

    with try_exclusive(tmp_path / ".alert_flush.lock") as held:
        assert held
        report = alerter.flush()

    assert report.skipped is True and report.mails_sent == 0
    assert smtp_server.handler.received == []


def test_send_when_threads_send_at_once_then_every_alert_recorded_and_queued_once(smtp_server, tmp_path, clock):
    alerter = Alerter(smtp_server.settings(), tmp_path, clock)

    def worker(w: int) -> None:
        for n in range(10):
            alerter.send(Alert("order_rejected", f"worker {w} order {n} rejected", created_at=clock()))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(alerter.pending()) == 40  # 4 threads x 10 alerts, none lost to a racing rewrite
    assert len(read_alert_log(tmp_path / "alerts.jsonl")) == 40


def test_retry_delay_when_failures_grow_then_doubles_up_to_the_cap():
    retry = RetryPolicy(base_seconds=60, max_seconds=3600)

    # 60 * 2**(n-1): 60, 120, 240, ... 3840 is capped to 3600 at n = 7.
    assert [retry.delay(n) for n in (1, 2, 3, 7)] == [timedelta(seconds=s) for s in (60, 120, 240, 3600)]
