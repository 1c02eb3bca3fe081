from __future__ import annotations

import json
import logging

import pytest

from kobe_pipelines.alerts import Alert, DeliveryError, EmailSink, LogSink, Severity, compose_mail, read_alert_log
from kobe_pipelines.errors import ConfigError
from kobe_pipelines_tests.alerts.conftest import ALERT_TO, SMTP_PASSWORD, SMTP_USER, T0


def _halt_mail():
    return compose_mail([Alert("halt", "Drawdown halt engaged at -15.2%", "equity 84,800 vs peak 100,000",
                               severity=Severity.CRITICAL, created_at=T0)])


def test_deliver_when_server_requires_starttls_and_auth_then_message_arrives_with_headers_and_body(smtp_server):
    sink = EmailSink(smtp_server.settings())

    sink.deliver(_halt_mail())

    assert len(smtp_server.handler.received) == 1
    got = smtp_server.handler.received[0]
    assert got.tls is True  # STARTTLS was negotiated before MAIL FROM
    assert got.login == SMTP_USER.encode()
    assert got.mail_from == "robot@kobe.test"  # bare address of 'KOBE Robot <robot@kobe.test>'
    assert got.rcpt_tos == list(ALERT_TO)
    assert got.message["From"] == "KOBE Robot <robot@kobe.test>"
    assert got.message["To"] == "ops@kobe.test, risk@kobe.test"
    assert got.message["Subject"] == "[KOBE CRITICAL] Drawdown halt engaged at -15.2%"
    assert got.message["X-KOBE-Alert-Key"] == "halt"
    body = got.message.get_content()
    assert "halt at 2024-06-03 13:30:00 UTC: Drawdown halt engaged at -15.2%" in body
    assert "equity 84,800 vs peak 100,000" in body


def test_deliver_when_certificate_not_trusted_then_delivery_error_and_nothing_sent(smtp_server):
    # No cafile: the system CAs do not know the test CA, so the TLS handshake must fail closed.
    sink = EmailSink(smtp_server.settings(cafile=None))

    with pytest.raises(DeliveryError, match="SSLCertVerificationError"):
        sink.deliver(_halt_mail())
    assert smtp_server.handler.received == []


def test_deliver_when_server_offers_no_starttls_then_refuses_to_send_in_clear_text(plaintext_smtp_server):
    sink = EmailSink(plaintext_smtp_server.settings())

    with pytest.raises(DeliveryError, match="STARTTLS"):
        sink.deliver(_halt_mail())
    assert plaintext_smtp_server.handler.received == []


def test_deliver_when_password_wrong_then_delivery_error_names_the_code_not_the_password(smtp_server):
    sink = EmailSink(smtp_server.settings(smtp_password="wrong-" + SMTP_PASSWORD))

    with pytest.raises(DeliveryError) as caught:
        sink.deliver(_halt_mail())

    assert "535" in str(caught.value)
    assert SMTP_PASSWORD not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_deliver_when_server_echoes_the_password_then_error_text_has_it_masked(echoing_smtp_server):
    wrong = "wrong-" + SMTP_PASSWORD
    sink = EmailSink(echoing_smtp_server.settings(smtp_password=wrong))

    with pytest.raises(DeliveryError) as caught:
        sink.deliver(_halt_mail())

    # The server answered '535 5.7.8 bad password <password>'; we keep the code, mask the secret.
    assert "535" in str(caught.value) and "bad password ***" in str(caught.value)
    assert wrong not in str(caught.value)


def test_deliver_when_server_refuses_data_then_delivery_error_with_server_reply(smtp_server):
    smtp_server.handler.refuse = "550 5.7.1 Message rejected as spam"

    with pytest.raises(DeliveryError, match="550 5.7.1 Message rejected as spam"):
        EmailSink(smtp_server.settings()).deliver(_halt_mail())


def test_deliver_when_server_never_answers_then_delivery_error_after_the_timeout(smtp_server, silent_server):
    sink = EmailSink(smtp_server.settings(smtp_port=silent_server, timeout_seconds=0.2))

    with pytest.raises(DeliveryError, match="timed out"):
        sink.deliver(_halt_mail())


def test_email_sink_when_smtp_host_missing_then_config_error():
    from kobe_pipelines.alerts import AlertSettings

    with pytest.raises(ConfigError, match="KOBE_SMTP_HOST"):
        EmailSink(AlertSettings())


def test_record_when_alert_sent_then_logged_at_its_severity_and_appended_as_json(tmp_path, caplog):
    sink = LogSink(tmp_path / "alerts.jsonl")
    alert = Alert("order_rejected", "AAPL buy 100 rejected: heat cap", "heat 10.4% > 10%", created_at=T0)

    with caplog.at_level(logging.INFO, logger="kobe_pipelines.alerts"):
        sink.record(alert)

    [record] = [r for r in caplog.records if r.name == "kobe_pipelines.alerts"]
    assert record.levelno == logging.WARNING  # severity defaults to warning
    assert "AAPL buy 100 rejected: heat cap" in record.getMessage()
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [alert.to_dict()]


def test_record_when_log_ends_in_a_torn_line_then_new_alert_lands_on_its_own_line(tmp_path):
    path = tmp_path / "alerts.jsonl"
    first = Alert("halt", "Halt", created_at=T0, severity="critical")
    path.write_text(json.dumps(first.to_dict()) + "\n" + '{"id": "torn-by-a-cra')
    second = Alert("run_failed", "Run ingest failed", created_at=T0)

    LogSink(path).record(second)

    # The torn line stays (it is evidence) but cannot swallow the new record.
    assert path.read_text().splitlines()[1] == '{"id": "torn-by-a-cra'
    assert read_alert_log(path) == [first, second]
