from __future__ import annotations

import pytest

from kobe_pipelines.errors import ConfigError
from kobe_pipelines.risk.types import OrderType, Side
from kobe_pipelines.strategies import validate_intents
from kobe_pipelines.strategies.buy_and_hold import BuyAndHold, BuyAndHoldConfig
from kobe_pipelines_tests.strategies.conftest import TRADING_DATE, book

UNIVERSE = {"AAA": 0.0, "BBB": 0.0, "CCC": 0.0, "DDD": 0.0, "EEE": 0.0}


def test_generate_when_book_is_empty_then_equal_weight_market_buys_with_half_stops_by_hand(make_ctx):
    # Buying power $100,000, buffer 2%: $98,000 / 5 = $19,600 a symbol, at the last close rounded to the tick.
    # AAA: 51.237 -> 51.24; floor(19,600 / 51.24) = 382 (383 x 51.24 = 19,624.92 is over); stop 51.24 x 0.5 = 25.62.
    # BBB: 0.87654 -> 0.8765 ($0.0001 grid); floor(19,600 / 0.8765) = 22,361; stop 0.43825 DOWN -> 0.4382.
    # CCC, DDD, EEE: 20.00; 980 shares; stop 10.00.
    ctx = make_ctx(UNIVERSE, version="v1")
    intents = BuyAndHold().generate(ctx)
    got = [(i.symbol, i.side, i.qty, i.entry, i.stop, i.take_profit, i.order_type) for i in intents]
    assert got == [
        ("AAA", Side.BUY, 382, 51.24, 25.62, None, OrderType.MARKET),
        ("BBB", Side.BUY, 22361, 0.8765, 0.4382, None, OrderType.MARKET),
        ("CCC", Side.BUY, 980, 20.0, 10.0, None, OrderType.MARKET),
        ("DDD", Side.BUY, 980, 20.0, 10.0, None, OrderType.MARKET),
        ("EEE", Side.BUY, 980, 20.0, 10.0, None, OrderType.MARKET),
    ]
    good, rejected = validate_intents(intents, ctx, strategy="buy_and_hold")
    assert rejected == [] and len(good) == 5
    assert all(i.trading_date == TRADING_DATE and i.strategy_version == "v1" for i in intents)


def test_generate_when_book_holds_a_position_then_nothing_is_bought_again(make_ctx):
    assert BuyAndHold().generate(make_ctx(UNIVERSE, account=book(positions={"AAA": 10}))) == []


def test_generate_when_entry_date_is_set_then_it_buys_on_that_date_only(make_ctx):
    assert BuyAndHold(BuyAndHoldConfig(entry_date="2024-06-11")).generate(make_ctx(UNIVERSE)) == []
    assert len(BuyAndHold(BuyAndHoldConfig(entry_date=TRADING_DATE)).generate(make_ctx(UNIVERSE))) == 5


def test_generate_when_signals_name_part_of_the_universe_then_only_those_are_bought_at_their_weight(make_ctx):
    # Two symbols: $98,000 / 2 = $49,000 each: CCC floor(49,000 / 20) = 2,450.
    intents = BuyAndHold().generate(make_ctx({"CCC": 0.0, "DDD": 0.0}))
    assert [(i.symbol, i.qty) for i in intents] == [("CCC", 2450), ("DDD", 2450)]


def test_generate_when_a_price_is_above_its_weight_then_that_symbol_is_skipped(make_ctx):
    # $200 of buying power: $196 / 5 = $39.20 a symbol: no AAA (51.24), one of each $20 symbol,
    # floor(39.20 / 0.8765) = 44 BBB.
    small = BuyAndHold().generate(make_ctx(UNIVERSE, account=book(200.0)))
    assert [(i.symbol, i.qty) for i in small] == [("BBB", 44), ("CCC", 1), ("DDD", 1), ("EEE", 1)]


def test_generate_when_stop_fraction_is_none_then_no_stop_and_uses_stops_false(make_ctx):
    strategy = BuyAndHold(BuyAndHoldConfig(stop_fraction=None))
    intents = strategy.generate(make_ctx(UNIVERSE))
    assert not strategy.uses_stops and all(i.stop is None for i in intents) and len(intents) == 5


def test_generate_when_stop_fraction_is_a_quarter_then_stop_three_quarters_of_entry_rounded_down(make_ctx):
    # AAA 51.24 x 0.75 = 38.43 exactly; BBB 0.8765 x 0.75 = 0.657375 DOWN -> 0.6573.
    intents = BuyAndHold(BuyAndHoldConfig(stop_fraction=0.25)).generate(make_ctx(UNIVERSE))
    assert [i.stop for i in intents[:2]] == [38.43, 0.6573]


@pytest.mark.parametrize(("field", "value"), [("stop_fraction", 1.0), ("stop_fraction", 0.0), ("cash_buffer", -0.1),
                                              ("cash_buffer", 1.0), ("entry_date", "2024-6-10"), ("entry_date", "soon")])
def test_config_when_value_out_of_range_then_config_error_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        BuyAndHoldConfig(**{field: value})
