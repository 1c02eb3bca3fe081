"""The paper fill model, every figure worked by hand with 5 bps slippage (slip = 0.0005)."""

from decimal import Decimal as D

import pytest

from kobe_pipelines.execution.broker import LegRole
from kobe_pipelines.execution.paper_model import Bar, ExitFill, ModelFill, entry_fill, exit_fill
from kobe_pipelines.risk.types import Side

SLIP = D("0.0005")


def bar(o, h, lo, c) -> Bar:
    return Bar(D(str(o)), D(str(h)), D(str(lo)), D(str(c)))


# ---- entries ---------------------------------------------------------------------------------


def test_entry_when_buy_limit_traded_through_after_a_higher_open_then_fills_at_the_limit():
    # base min(101, 100) = 100; 100 x 1.0005 = 100.05 is above the limit -> capped at 100.00
    assert entry_fill(Side.BUY, D("100"), bar(101, 102, 99.5, 100.5), SLIP) == ModelFill(D("100"), False)


def test_entry_when_buy_bar_opens_below_the_limit_then_fills_at_the_open_plus_slippage():
    # 99.00 x 1.0005 = 99.0495 (< 100: the limit does not bind)
    assert entry_fill(Side.BUY, D("100"), bar(99, 100.5, 98.5, 100), SLIP) == ModelFill(D("99.0495"), True)


def test_entry_when_buy_fill_price_has_sub_tick_digits_then_rounds_up_against_us():
    # 19.90 x 1.0005 = 19.90995 -> up to 19.9100
    assert entry_fill(Side.BUY, D("20"), bar(19.90, 20.3, 19.7, 20.2), SLIP).price == D("19.9100")


def test_entry_when_low_only_touches_the_buy_limit_then_no_fill():
    assert entry_fill(Side.BUY, D("100"), bar(101, 102, 100, 101), SLIP) is None


def test_entry_when_sell_limit_traded_through_then_fills_at_the_limit():
    # base max(99, 100) = 100; 100 x 0.9995 = 99.95 is below the limit -> 100.00
    assert entry_fill(Side.SELL, D("100"), bar(99, 100.5, 98.5, 100), SLIP) == ModelFill(D("100"), False)


def test_entry_when_sell_bar_opens_above_the_limit_then_fills_at_the_open_less_slippage():
    # 101 x 0.9995 = 100.9495
    assert entry_fill(Side.SELL, D("100"), bar(101, 102, 99, 100), SLIP) == ModelFill(D("100.9495"), True)


def test_entry_when_high_only_touches_the_sell_limit_then_no_fill():
    assert entry_fill(Side.SELL, D("100"), bar(99, 100, 98, 99), SLIP) is None


def test_entry_when_market_then_fills_at_the_open_with_slippage_against_us():
    # buy 50 x 1.0005 = 50.025; sell 50 x 0.9995 = 49.975
    assert entry_fill(Side.BUY, None, bar(50, 51, 49, 50), SLIP) == ModelFill(D("50.0250"), True)
    assert entry_fill(Side.SELL, None, bar(50, 51, 49, 50), SLIP) == ModelFill(D("49.9750"), True)


# ---- exits of a long: entry 100, stop 95, target 110 ------------------------------------------

LONG = dict(entry_side=Side.BUY, stop=D("95"), target=D("110"), slip=SLIP)


@pytest.mark.parametrize(("prices", "expected"), [
    # stop hit: 95 x 0.9995 = 94.9525
    ((97, 98, 94.5, 95.5), ExitFill(LegRole.STOP_LOSS, D("94.9525"), False)),
    # target hit: high 110.5 > 110 -> 110.00
    ((105, 110.5, 104, 110.2), ExitFill(LegRole.TAKE_PROFIT, D("110"), False)),
    # gap through the stop: the open 93 x 0.9995 = 92.9535, worse than the stop
    ((93, 94, 92, 93.5), ExitFill(LegRole.STOP_LOSS, D("92.9535"), True)),
    # both legs in one bar: the stop wins (94.9525)
    ((100, 111, 94, 105), ExitFill(LegRole.STOP_LOSS, D("94.9525"), False)),
    # opened through the target: it filled first, 112 x 0.9995 = 111.944, despite the low under the stop
    ((112, 113, 94, 100), ExitFill(LegRole.TAKE_PROFIT, D("111.9440"), True)),
    # a touch of the stop triggers it
    ((97, 98, 95, 96), ExitFill(LegRole.STOP_LOSS, D("94.9525"), False)),
    # a touch of the target is not a fill; neither leg
    ((105, 110, 104, 109), None),
    ((100, 105, 96, 101), None),
])
def test_exit_of_long_on_a_later_bar(prices, expected):
    assert exit_fill(bar=bar(*prices), **LONG) == expected


def test_exit_when_entry_bar_and_entry_at_limit_then_stop_checked_but_target_not():
    # the path from the open 101 to the low 94 passed the limit 100 first: the stop came after the fill
    assert exit_fill(bar=bar(101, 112, 94, 100), entry_bar=True, entry_at_open=False, **LONG) == ExitFill(
        LegRole.STOP_LOSS, D("94.9525"), False)
    # the high 112 may have come before the fill: the target is not taken on this bar
    assert exit_fill(bar=bar(101, 112, 99, 105), entry_bar=True, entry_at_open=False, **LONG) is None


def test_exit_when_entry_filled_at_the_open_then_target_live_on_the_entry_bar():
    assert exit_fill(bar=bar(99, 111, 98, 110), entry_bar=True, entry_at_open=True, **LONG) == ExitFill(
        LegRole.TAKE_PROFIT, D("110"), False)


def test_exit_when_entry_bar_opens_through_the_stop_then_out_at_the_open():
    # entry filled at the open 94 (below the limit), the stop 95 is already crossed: 94 x 0.9995 = 93.953
    assert exit_fill(bar=bar(94, 96, 93, 95), entry_bar=True, entry_at_open=True, **LONG) == ExitFill(
        LegRole.STOP_LOSS, D("93.9530"), True)


# ---- exits of a short: entry 100, stop 105, target 90 -----------------------------------------

SHORT = dict(entry_side=Side.SELL, stop=D("105"), target=D("90"), slip=SLIP)


@pytest.mark.parametrize(("prices", "expected"), [
    # stop hit: 105 x 1.0005 = 105.0525
    ((103, 105.5, 102, 104), ExitFill(LegRole.STOP_LOSS, D("105.0525"), False)),
    # gap through the stop: 107 x 1.0005 = 107.0535
    ((107, 108, 106, 107), ExitFill(LegRole.STOP_LOSS, D("107.0535"), True)),
    # target: low 89.5 < 90 -> 90.00
    ((95, 96, 89.5, 91), ExitFill(LegRole.TAKE_PROFIT, D("90"), False)),
    # opened below the target: 88 x 1.0005 = 88.044, filled first despite the high over the stop
    ((88, 106, 87, 100), ExitFill(LegRole.TAKE_PROFIT, D("88.0440"), True)),
    # both touched: the stop wins
    ((95, 106, 89, 100), ExitFill(LegRole.STOP_LOSS, D("105.0525"), False)),
    ((95, 104, 91, 100), None),
])
def test_exit_of_short_on_a_later_bar(prices, expected):
    assert exit_fill(bar=bar(*prices), **SHORT) == expected


def test_exit_when_only_one_leg_then_the_other_is_ignored():
    assert exit_fill(Side.BUY, None, D("110"), bar(100, 111, 90, 105), SLIP) == ExitFill(LegRole.TAKE_PROFIT, D("110"), False)
    assert exit_fill(Side.BUY, D("95"), None, bar(100, 111, 96, 105), SLIP) is None
