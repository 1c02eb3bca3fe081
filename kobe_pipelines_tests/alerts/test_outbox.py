from __future__ import annotations

import json
from datetime import timedelta

from kobe_pipelines.alerts import Alert, KeyState, Outbox, OutboxState, PendingAlert
from kobe_pipelines_tests.alerts.conftest import T0


def _pending(n: int) -> PendingAlert:
    alert = Alert("order_rejected", f"order {n} rejected", created_at=T0, id=f"a{n}")
    return PendingAlert(alert, T0 + timedelta(seconds=n))


def test_add_then_load_when_reopened_then_pending_alerts_and_key_state_survive(tmp_path):
    Outbox(tmp_path).add(_pending(1))
    Outbox(tmp_path).update(lambda s: OutboxState(s.pending, {"halt": KeyState(
        "halt", last_sent_at=T0, attempts=2, next_attempt_at=T0 + timedelta(minutes=2), last_error="550")}))

    state, corrupt = Outbox(tmp_path).load()

    assert corrupt == 0
    assert state.pending == (_pending(1),)
    assert state.keys == {"halt": KeyState("halt", T0, 2, T0 + timedelta(minutes=2), "550")}


def test_load_when_a_line_is_corrupt_then_line_set_aside_verbatim_and_others_kept(tmp_path):
    outbox = Outbox(tmp_path)
    outbox.add(_pending(1))
    outbox.add(_pending(2))
    lines = outbox.path.read_text().splitlines()
    garbage = '{"type": "pending", "queued_at": "yesterday", "alert": {}}'
    outbox.path.write_text("\n".join([lines[0], garbage, "not json at all", lines[1]]) + "\n")

    state, corrupt = outbox.load()

    assert corrupt == 2
    assert [p.alert.id for p in state.pending] == ["a1", "a2"]
    assert outbox.corrupt_path.read_text().splitlines() == [garbage, "not json at all"]
    # Set aside once: the outbox itself was rewritten without them.
    assert outbox.load() == (state, 0)


def test_load_when_same_alert_queued_twice_then_kept_once(tmp_path):
    outbox = Outbox(tmp_path)
    outbox.add(_pending(1))
    line = outbox.path.read_text()
    outbox.path.write_text(line + line)

    state, _ = outbox.load()

    assert [p.alert.id for p in state.pending] == ["a1"]


def test_update_when_change_raises_then_outbox_unchanged(tmp_path):
    outbox = Outbox(tmp_path)
    outbox.add(_pending(1))
    before = outbox.path.read_bytes()

    def broken(state):
        raise RuntimeError("boom")

    try:
        outbox.update(broken)
    except RuntimeError:
        pass

    assert outbox.path.read_bytes() == before


def test_set_aside_undeliverable_then_alert_kept_with_reason(tmp_path):
    outbox = Outbox(tmp_path)

    outbox.set_aside_undeliverable((_pending(1),), "550 rejected", attempts=20)

    [line] = outbox.undeliverable_path.read_text().splitlines()
    kept = json.loads(line)
    assert kept["alert"]["id"] == "a1" and kept["reason"] == "550 rejected" and kept["attempts"] == 20
