from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from kobe_pipelines.alerts import Alert, Severity, alert_key
from kobe_pipelines.errors import RecordError
from kobe_pipelines_tests.alerts.conftest import T0


def test_alert_when_key_not_given_then_key_is_the_kind():
    assert Alert("order_rejected", "AAPL rejected").key == "order_rejected"


def test_alert_when_created_in_new_york_time_then_stored_as_utc():
    # 09:30 EDT (UTC-4) on 2024-06-03 is 13:30 UTC.
    alert = Alert("halt", "Halt", created_at=datetime(2024, 6, 3, 9, 30, tzinfo=timezone(timedelta(hours=-4))))

    assert alert.created_at == T0 and alert.created_at.utcoffset() == timedelta(0)


def test_to_dict_then_from_dict_when_round_tripped_then_equal():
    alert = Alert("fills_summary", "3 fills on 2024-06-03", "AAPL +100 @ 190.12", severity="info",
                  key="fills_summary:2024-06-03", created_at=T0)

    assert Alert.from_dict(alert.to_dict()) == alert
    assert alert.severity is Severity.INFO


@pytest.mark.parametrize(("changes", "field"), [
    ({"severity": "urgent"}, "severity"),
    ({"kind": "Order Rejected"}, "kind"),
    ({"subject": ""}, "subject"),
    ({"subject": "two\nlines"}, "subject"),
    ({"subject": "x" * 201}, "subject"),
    ({"key": "Has Spaces"}, "key"),
    ({"created_at": datetime(2024, 6, 3, 13, 30)}, "created_at"),  # naive
    ({"id": "../etc"}, "id"),
])
def test_alert_when_field_invalid_then_record_error_names_the_field(changes, field):
    values = {"kind": "halt", "subject": "Halt", "created_at": T0, **changes}

    with pytest.raises(RecordError) as caught:
        Alert(**values)

    assert caught.value.field == field


def test_from_dict_when_created_at_missing_then_record_error_names_it():
    data = Alert("halt", "Halt", created_at=T0).to_dict()
    del data["created_at"]

    with pytest.raises(RecordError, match="created_at"):
        Alert.from_dict(data)


def test_alert_key_when_symbol_has_capitals_and_a_dot_then_lower_case_key_an_alert_accepts():
    key = alert_key("delisted", "BRK.B")
    assert key == "delisted:brk.b"
    assert Alert(kind="order_rejected", subject="BRK.B delisted", key=key).key == "delisted:brk.b"
