import re

import pytest

from kobe_pipelines.errors import RecordError
from kobe_pipelines.orders import MAX_CLIENT_ORDER_ID, client_order_id, is_valid_client_order_id, order_details

ARGS = ("ranked_long", "AAPL", "2024-03-04", "buy")


def test_client_order_id_when_same_order_twice_then_same_id():
    assert client_order_id(*ARGS) == client_order_id(*ARGS)
    assert client_order_id(*ARGS, details=order_details(100, 187.45, 180.1)) == client_order_id(
        *ARGS, details=order_details(100, 187.45, 180.1))


def test_client_order_id_when_read_then_names_strategy_session_symbol_and_side():
    assert re.fullmatch(r"rankedlo-20240304-AAPL-b-[0-9a-f]{16}", client_order_id(*ARGS))


@pytest.mark.parametrize("index, other", [(0, "other"), (1, "MSFT"), (2, "2024-03-05"), (3, "sell")])
def test_client_order_id_when_any_identity_field_differs_then_different_id(index, other):
    changed = list(ARGS)
    changed[index] = other
    assert client_order_id(*changed) != client_order_id(*ARGS)


def test_client_order_id_when_only_the_readable_parts_collide_then_the_digest_still_differs():
    # "ranked_long" and "rankedlong" read the same once reduced; the digest covers the full text
    assert client_order_id("ranked_long", "BRK.B", "2024-03-04", "buy") != client_order_id("rankedlong", "BRK.B",
                                                                                             "2024-03-04", "buy")


@pytest.mark.parametrize("key, other", [("qty", 101), ("entry", 187.46), ("stop", 180.2), ("stop", None),
                                        ("order_type", "market")])
def test_client_order_id_when_a_manual_detail_differs_then_different_id(key, other):
    base = dict(qty=100, entry=187.45, stop=180.1, take_profit=195.3)
    changed = {**base, key: other}
    assert client_order_id(*ARGS, details=order_details(**changed)) != client_order_id(*ARGS, details=order_details(**base))


def test_client_order_id_when_price_differs_only_by_float_noise_then_same_id():
    assert client_order_id(*ARGS, details=order_details(100, 187.45000000000002)) == client_order_id(
        *ARGS, details=order_details(100, 187.45))


def test_client_order_id_when_long_odd_names_then_within_48_characters_the_validator_accepts():
    coid = client_order_id("my strategy/with spaces" * 10, "BRK B/WITH A VERY LONG NAME", "2024-03-04", "sell",
                           details={"protects": "x" * 200})
    assert len(coid) <= MAX_CLIENT_ORDER_ID == 48
    assert is_valid_client_order_id(coid)


@pytest.mark.parametrize("args, field", [(("s", "A", "2024-13-01", "buy"), "trading_date"), (("s", "A", "2024-03-04", "hold"), "side"),
                                         (("", "A", "2024-03-04", "buy"), "strategy"), (("s", " ", "2024-03-04", "buy"), "symbol")])
def test_client_order_id_when_field_bad_then_raises_naming_it(args, field):
    with pytest.raises(RecordError, match=f"field '{field}'"):
        client_order_id(*args)


@pytest.mark.parametrize("kwargs, field", [(dict(qty=1.5, entry=10.0), "qty"), (dict(qty=-3, entry=10.0), "qty"),
                                           (dict(qty=1, entry=float("nan")), "entry"),
                                           (dict(qty=1, entry=10.0, order_type="hold"), "order_type")])
def test_order_details_when_field_bad_then_raises_naming_it(kwargs, field):
    with pytest.raises(RecordError, match=f"field '{field}'"):
        order_details(**kwargs)


@pytest.mark.parametrize("value, ok", [("a" * 48, True), ("a" * 49, False), ("has space", False), ("", False),
                                       ("kobe:1.x-y_z", True), (None, False)])
def test_is_valid_client_order_id_when_checked_then_1_to_48_safe_characters(value, ok):
    assert is_valid_client_order_id(value) is ok
