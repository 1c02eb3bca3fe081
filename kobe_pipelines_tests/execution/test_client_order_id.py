import re

import pytest

from kobe_pipelines.errors import RecordError
from kobe_pipelines.execution.client_order_id import client_order_id_for, make_client_order_id
from kobe_pipelines_tests.execution.conftest import intent

ARGS = ("ranked_long", "AAPL", "2024-03-04", "buy", 100, 187.45, 180.1, 195.3)


def test_make_client_order_id_when_same_intent_twice_then_same_id():
    assert make_client_order_id(*ARGS) == make_client_order_id(*ARGS)


def test_make_client_order_id_when_read_then_names_strategy_symbol_and_session():
    coid = make_client_order_id(*ARGS)
    assert re.fullmatch(r"kobe-ranked_long-AAPL-20240304-[0-9a-f]{16}", coid)


def test_make_client_order_id_when_price_differs_only_by_float_noise_then_same_id():
    noisy = (*ARGS[:5], 187.45000000000002, *ARGS[6:])
    assert make_client_order_id(*noisy) == make_client_order_id(*ARGS)


@pytest.mark.parametrize("index, other", [(0, "other"), (1, "MSFT"), (2, "2024-03-05"), (3, "sell"), (4, 101),
                                          (5, 187.46), (6, 180.2), (7, None)])
def test_make_client_order_id_when_any_field_differs_then_different_id(index, other):
    changed = list(ARGS)
    changed[index] = other
    assert make_client_order_id(*changed) != make_client_order_id(*ARGS)


def test_make_client_order_id_when_long_odd_names_then_safe_characters_within_128():
    coid = make_client_order_id("my strategy/with spaces" * 10, "BRK B", "2024-03-04", "buy", 1, 400.0)
    assert len(coid) <= 128 and re.fullmatch(r"[A-Za-z0-9_.-]+", coid)


@pytest.mark.parametrize("index, bad, field", [(2, "2024-13-01", "trading_date"), (3, "hold", "side"),
                                               (4, 1.5, "qty"), (4, -3, "qty"), (5, float("nan"), "entry")])
def test_make_client_order_id_when_field_bad_then_raises_naming_it(index, bad, field):
    changed = list(ARGS)
    changed[index] = bad
    with pytest.raises(RecordError, match=f"field '{field}'"):
        make_client_order_id(*changed)


def test_client_order_id_for_when_intent_then_ignores_its_own_id():
    a = intent(coid="x", strategy="s", trading_date="2024-03-04")
    b = intent(coid="y", strategy="s", trading_date="2024-03-04")
    assert client_order_id_for(a) == client_order_id_for(b) == make_client_order_id(
        "s", "AAA", "2024-03-04", "buy", 10, 100.0, 95.0, 110.0)
