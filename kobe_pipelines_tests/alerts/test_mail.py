from __future__ import annotations

from datetime import timedelta

import pytest

from kobe_pipelines.alerts import Alert, Severity, compose_mail
from kobe_pipelines.alerts.mail import DIGEST_LIMIT
from kobe_pipelines_tests.alerts.conftest import T0


def _rejected(n: int) -> Alert:
    return Alert("order_rejected", f"order {n} rejected", f"reason {n}", created_at=T0 + timedelta(seconds=n))


def test_compose_when_one_alert_then_subject_is_tagged_subject():
    mail = compose_mail([Alert("halt", "Halt engaged", "dd 15.1%", severity="critical", created_at=T0)])

    assert mail.subject == "[KOBE CRITICAL] Halt engaged"
    assert mail.body == "[critical] halt at 2024-06-03 13:30:00 UTC: Halt engaged\ndd 15.1%\n"


def test_compose_when_several_alerts_then_digest_lists_each_oldest_first():
    alerts = [_rejected(n) for n in (3, 1, 2)]

    mail = compose_mail(alerts)

    assert mail.subject == "[KOBE WARNING] 3 x order_rejected: order 1 rejected (+2 more)"
    body = mail.body
    assert body.index("1. [warning] order_rejected at 2024-06-03 13:30:01 UTC: order 1 rejected") \
        < body.index("2. [warning] order_rejected at 2024-06-03 13:30:02 UTC: order 2 rejected") \
        < body.index("3. [warning] order_rejected at 2024-06-03 13:30:03 UTC: order 3 rejected")
    assert mail.alert_ids == tuple(a.id for a in sorted(alerts, key=lambda a: a.created_at))


def test_compose_when_group_mixes_severities_then_mail_takes_the_highest():
    alerts = [Alert("halt", "warn", created_at=T0), Alert("halt", "crit", severity="critical", created_at=T0)]

    assert compose_mail(alerts).severity is Severity.CRITICAL


def test_compose_when_more_than_digest_limit_then_rest_counted_not_listed():
    alerts = [_rejected(n) for n in range(DIGEST_LIMIT + 7)]

    mail = compose_mail(alerts)

    assert f"{DIGEST_LIMIT}. [warning]" in mail.body
    assert f"{DIGEST_LIMIT + 1}. [warning]" not in mail.body
    assert "... and 7 more" in mail.body
    assert len(mail.alert_ids) == DIGEST_LIMIT + 7  # all are marked sent: they are in alerts.jsonl


def test_compose_when_keys_differ_then_value_error():
    with pytest.raises(ValueError, match="several keys"):
        compose_mail([Alert("halt", "a", created_at=T0), Alert("run_failed", "b", created_at=T0)])
