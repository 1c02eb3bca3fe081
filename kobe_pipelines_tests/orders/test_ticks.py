from decimal import Decimal

import pytest

from kobe_pipelines.errors import RecordError
from kobe_pipelines.orders.ticks import Rounding, is_on_tick, on_tick_decimal, round_bracket, tick_for, to_tick

DOWN, UP, NEAREST = Rounding.DOWN, Rounding.UP, Rounding.NEAREST


@pytest.mark.parametrize(("price", "mode", "expected"), [
    (187.456, NEAREST, "187.46"),  # $0.01 tick at or above $1
    (187.456, DOWN, "187.45"),
    (187.451, UP, "187.46"),
    (51.237, DOWN, "51.23"),
    (10.005, NEAREST, "10.01"),  # written 10.005: half a cent rounds up
    (0.123456, NEAREST, "0.1235"),  # $0.0001 tick below $1
    (0.123456, DOWN, "0.1234"),
    (0.87651, UP, "0.8766"),
    (0.99995, UP, "1.00"),  # rounds up onto the dollar: written on the penny grid
    (1.0015, UP, "1.01"),  # at or above $1 the cent grid applies even to 1.0015
    (1.004, DOWN, "1.00"),  # at or above $1 never leaves the penny grid
    (187.45, NEAREST, "187.45"),  # from the float's shortest text, not 187.449999...
])
def test_to_tick_when_rounding_then_uses_the_tick_of_the_price(price, mode, expected):
    assert to_tick(price, mode) == Decimal(expected)
    assert str(to_tick(price, mode)) == expected


def test_to_tick_when_float_noise_sits_on_a_boundary_then_snaps_before_rounding():
    # 0.1 + 0.2 = 0.30000000000000004 and 0.3 - 0.1 = 0.19999999999999998 in floats; the intended
    # prices are 0.3000 and 0.2000, so UP must not give 0.3001 nor DOWN 0.1999.
    up_noise, down_noise = 0.1 + 0.2, 0.3 - 0.1
    assert (up_noise, down_noise) != (0.3, 0.2)
    assert to_tick(up_noise, UP) == Decimal("0.3000")
    assert to_tick(down_noise, DOWN) == Decimal("0.2000")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0, -1.0, "abc", None, True])
def test_to_tick_when_price_not_finite_positive_then_raises_naming_the_field(bad):
    with pytest.raises(RecordError, match="field 'stop'"):
        to_tick(bad, field="stop")


def test_to_tick_when_sub_penny_price_rounds_to_zero_then_raises():
    with pytest.raises(RecordError, match="rounds to zero"):
        to_tick(0.00004, DOWN, field="entry")


def test_tick_for_when_price_crosses_one_dollar_then_switches_from_sub_penny_to_cent():
    assert str(tick_for(0.9999)) == "0.0001"
    assert str(tick_for(1.0)) == "0.01"


@pytest.mark.parametrize(("price", "on"), [
    (100.0, True), (100.01, True), (100.005, False), (1.0, True), (0.9999, True), (0.99995, False),
    (12345.67, True), (0.0001, True), (51.235, False), (1.0001, False),
    (3.3, True),  # 329.99999999999997 cents in binary, 3.3 as written
    (0.1 + 0.2, True),  # float noise only
    (float("nan"), False), (True, False),
])
def test_is_on_tick_when_checked_then_follows_the_rule_612_grid_in_decimal(price, on):
    assert is_on_tick(price) is on


def test_on_tick_decimal_when_float_noise_then_returns_the_grid_price():
    assert on_tick_decimal(0.1 + 0.2) == Decimal("0.3000")


def test_on_tick_decimal_when_off_the_grid_then_raises_naming_the_field():
    with pytest.raises(RecordError, match="field 'entry' is not on the 0.01 tick"):
        on_tick_decimal(187.455, field="entry")


def test_round_bracket_when_buy_then_entry_down_stop_up_target_down():
    # entry 100.009 -> 100.00 (never pay more); stop 95.001 -> 95.01 (less loss per share);
    # target 110.009 -> 110.00 (towards the entry)
    assert round_bracket("buy", 100.009, 95.001, 110.009) == (Decimal("100.00"), Decimal("95.01"), Decimal("110.00"))


def test_round_bracket_when_sell_then_entry_up_stop_down_target_up():
    # mirror: entry 100.001 -> 100.01, stop 105.009 -> 105.00, target 90.001 -> 90.01
    assert round_bracket("sell", 100.001, 105.009, 90.001) == (Decimal("100.01"), Decimal("105.00"), Decimal("90.01"))


def test_round_bracket_when_buy_stop_rounds_onto_the_entry_then_raises_naming_stop():
    # entry 10.009 -> 10.00 (down); stop 9.999 -> 10.00 (up): the stop would touch the entry
    with pytest.raises(RecordError, match="field 'stop' must stay below the entry 10.00"):
        round_bracket("buy", 10.009, 9.999, 11.0)


def test_round_bracket_when_sell_target_rounds_onto_the_entry_then_raises_naming_take_profit():
    # entry 0.50001 -> 0.5001 (up); target 0.50005 -> 0.5001 (up, towards the entry)
    with pytest.raises(RecordError, match="field 'take_profit' must stay below the entry"):
        round_bracket("sell", 0.50001, 0.6, 0.50005)


def test_round_bracket_when_no_legs_then_rounds_only_the_entry():
    assert round_bracket("buy", 0.45678) == (Decimal("0.4567"), None, None)


def test_round_bracket_when_sides_not_checked_then_returns_the_rounded_prices_as_they_are():
    assert round_bracket("buy", 100.0, 101.0, 110.0, check_sides=False) == (Decimal("100.00"), Decimal("101.00"),
                                                                           Decimal("110.00"))
