from __future__ import annotations

import math

import pytest

from kobe_pipelines.risk.heat import book_open_risk, is_reducing, order_risk, portfolio_heat, position_risk, within_cap
from kobe_pipelines.risk.types import Position
from kobe_pipelines_tests.risk.conftest import make_book


def test_position_risk_when_long_with_stop_then_measured_from_mark_not_entry():
    # Bought at 80, marked 100, stop 90: 100 x (100 - 90) = 1,000 (from the entry it would be 0).
    assert position_risk(Position("AAPL", 100, 80.0, stop=90.0), 100.0) == 1_000.0


def test_position_risk_when_long_stop_above_mark_then_zero():
    # 100 x max(0, 100 - 105) = 0: the stop locks in more than the mark.
    assert position_risk(Position("AAPL", 100, 80.0, stop=105.0), 100.0) == 0.0


def test_position_risk_when_short_with_stop_then_stop_minus_mark():
    # Short 50 marked 200, stop 220: 50 x (220 - 200) = 1,000.
    assert position_risk(Position("MSFT", -50, 210.0, stop=220.0), 200.0) == 1_000.0


def test_position_risk_when_short_stop_below_mark_then_zero():
    assert position_risk(Position("MSFT", -50, 210.0, stop=190.0), 200.0) == 0.0


@pytest.mark.parametrize(("qty", "expected"), [(100, 5_000.0), (-100, 5_000.0)])
def test_position_risk_when_no_stop_then_whole_market_value(qty, expected):
    # |qty| x mark = 100 x 50 = 5,000, long or short.
    assert position_risk(Position("TSLA", qty, 40.0), 50.0) == expected


def test_portfolio_heat_when_mixed_book_then_sum_over_equity():
    # AAPL long 100 @ mark 100 stop 90 -> 1,000; MSFT short 50 @ 200 stop 220 -> 1,000;
    # TSLA long 100 @ 50 no stop -> 5,000. 7,000 / 100,000 = 7 %.
    book = make_book([Position("AAPL", 100, 95.0, 90.0), Position("MSFT", -50, 205.0, 220.0), Position("TSLA", 100, 45.0)])
    report = portfolio_heat(book)
    assert report.open_risk == 7_000.0 and report.heat == pytest.approx(0.07)


def test_portfolio_heat_when_equity_not_positive_then_infinite():
    assert math.isinf(portfolio_heat(make_book([Position("TSLA", 10, 45.0)], equity=0.0)).heat)


def test_book_open_risk_when_position_has_no_mark_then_reports_it_instead_of_counting_zero():
    book = make_book([Position("ZZZ", 100, 10.0, 9.0)])
    risk, problems = book_open_risk(book)
    assert risk == 0.0 and problems == ("position ZZZ: no usable mark in book.last_prices (got None)",)


@pytest.mark.parametrize(("side", "entry", "stop", "mark", "expected"), [
    (1, 100.0, 95.0, 100.0, 500.0),   # buy 100: 100 x (100 - 95)
    (1, 95.0, 90.0, 100.0, 1_000.0),  # buy below the mark: once filled it is marked 100 -> 100 x (100 - 90)
    (1, 100.0, None, 100.0, 10_000.0),  # no stop: 100 x 100
    (-1, 200.0, 210.0, 200.0, 1_000.0),  # sell short 100: 100 x (210 - 200)
    (-1, 205.0, 210.0, 200.0, 1_000.0),  # short above the mark: marked 200 -> 100 x (210 - 200)
    (-1, 195.0, 210.0, 200.0, 1_500.0),  # short below the mark: 100 x (210 - 195)
    (-1, 200.0, None, 200.0, 20_000.0),  # no stop: 100 x 200
])
def test_order_risk_when_long_or_short_with_or_without_stop_then_worse_of_entry_and_mark(side, entry, stop, mark, expected):
    assert order_risk(side, 100, entry, stop, mark) == pytest.approx(expected)


@pytest.mark.parametrize(("position", "side", "qty", "expected"), [
    (100, -1, 40, True),   # sell 40 of a 100 long
    (100, -1, 100, True),  # close the long
    (100, -1, 101, False),  # flips to short 1
    (100, 1, 10, False),   # adds to the long
    (-50, 1, 50, True),    # buys back the short
    (-50, -1, 1, False),   # adds to the short
    (0, -1, 1, False),     # opens a short
])
def test_is_reducing_when_order_moves_toward_zero_without_flipping_then_true(position, side, qty, expected):
    assert is_reducing(position, side, qty) is expected


def test_within_cap_when_exactly_at_cap_then_allowed_and_when_equity_zero_then_never():
    assert within_cap(10_000.0, 100_000.0, 0.10) and not within_cap(10_000.01, 100_000.0, 0.10)
    assert not within_cap(0.0, 0.0, 0.10)
