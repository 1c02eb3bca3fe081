from __future__ import annotations

import pytest

from kobe_pipelines.strategies.ticks import Rounding, is_on_tick, round_to_tick, tick_size


@pytest.mark.parametrize(
    ("price", "rounding", "expected"),
    [
        (51.237, Rounding.DOWN, 51.23),  # cent grid at/above $1
        (51.231, Rounding.UP, 51.24),
        (10.005, Rounding.NEAREST, 10.01),  # written 10.005: half a cent rounds up
        (0.87654, Rounding.DOWN, 0.8765),  # $0.0001 grid below $1
        (0.87651, Rounding.UP, 0.8766),
        (0.99995, Rounding.UP, 1.0),  # sub-dollar input rounds up onto $1.0000, also a cent price
        (1.0015, Rounding.UP, 1.01),  # at/above $1 the cent grid applies even to 1.0015
        (1.0, Rounding.DOWN, 1.0),
    ],
)
def test_round_to_tick_when_price_off_grid_then_moves_in_the_asked_direction(price, rounding, expected):
    assert round_to_tick(price, rounding) == expected


def test_round_to_tick_when_float_noise_sits_on_a_boundary_then_snaps_before_rounding():
    # 0.1 + 0.2 = 0.30000000000000004 and 0.3 - 0.1 = 0.19999999999999998 in floats; the intended
    # prices are 0.3000 and 0.2000, so UP must not give 0.3001 nor DOWN 0.1999.
    up_noise, down_noise = 0.1 + 0.2, 0.3 - 0.1
    assert (up_noise, down_noise) != (0.3, 0.2)
    assert round_to_tick(up_noise, Rounding.UP) == 0.3
    assert round_to_tick(down_noise, Rounding.DOWN) == 0.2


def test_tick_size_when_price_crosses_one_dollar_then_switches_from_sub_penny_to_cent():
    assert str(tick_size(0.9999)) == "0.0001"
    assert str(tick_size(1.0)) == "0.01"


@pytest.mark.parametrize(("price", "on"), [(51.23, True), (51.235, False), (0.8765, True), (0.87655, False), (1.0001, False)])
def test_is_on_tick_when_checked_then_follows_the_rule_612_grid(price, on):
    assert is_on_tick(price) is on


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True])
def test_round_to_tick_when_not_a_finite_price_then_raises(bad):
    with pytest.raises(ValueError):
        round_to_tick(bad)
