"""The rules of corporate actions on the book (execution/corporate_actions.py), worked by hand."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pandas as pd
import pytest

from kobe_pipelines.execution.corporate_actions import (
    CorporateAction,
    CorporateActionError,
    actions_from_tables,
    dividend_cash,
    split_exit_price,
    split_position,
)


@pytest.mark.parametrize("qty, ratio, open_price, whole, fraction, cash", [
    (101, Fraction(4), "24.75", 404, Fraction(0), "0"),               # 4-for-1: 404 sh, nothing left over
    (101, Fraction(3, 2), "66.00", 151, Fraction(1, 2), "33.00"),     # 3-for-2: 151.5 -> 151 + 0.5 x 66 paid
    (101, Fraction(1, 10), "990.00", 10, Fraction(1, 10), "99.000"),  # 1-for-10: 10.1 -> 10 + 0.1 x 990 paid
    (-101, Fraction(3, 2), "66.00", -151, Fraction(-1, 2), "-33.00"),  # a short pays for its half share
    (-101, Fraction(1, 10), "990.00", -10, Fraction(-1, 10), "-99.000"),
])
def test_split_position_when_split_then_whole_shares_toward_zero_and_the_fraction_in_cash_at_the_open(
        qty, ratio, open_price, whole, fraction, cash):
    effect = split_position(qty, Decimal("100"), ratio, Decimal(open_price))
    assert (effect.qty, effect.fraction, effect.cash) == (whole, fraction, Decimal(cash))
    assert effect.avg_entry == Decimal(100) / (Decimal(ratio.numerator) / Decimal(ratio.denominator))


@pytest.mark.parametrize("price, ratio, sign, leg, expected", [
    ("95.01", Fraction(4), 1, "stop", "23.76"),          # 23.7525: a long's stop rounds up (less loss)
    ("110.01", Fraction(4), 1, "take_profit", "27.50"),  # 27.5025: a long's target rounds down (fills sooner)
    ("95.00", Fraction(3, 2), 1, "stop", "63.34"),       # 63.3333...
    ("110.00", Fraction(3, 2), 1, "take_profit", "73.33"),
    ("105.01", Fraction(3, 2), -1, "stop", "70.00"),     # 70.00666...: a short's stop rounds down
    ("90.01", Fraction(3, 2), -1, "take_profit", "60.01"),  # 60.00666...: a short's target rounds up
    ("95.01", Fraction(1, 10), 1, "stop", "950.10"),     # reverse split: exact
    ("1.01", Fraction(4), 1, "stop", "0.2525"),          # below $1 the $0.0001 grid
])
def test_split_exit_price_when_split_then_on_the_tick_grid_by_the_conservative_rule(price, ratio, sign, leg, expected):
    assert split_exit_price(Decimal(price), ratio, sign, leg) == Decimal(expected)


def test_dividend_cash_when_long_or_short_then_credited_or_debited_qty_times_amount():
    action = CorporateAction("AAA", "2024-03-05", cash_amount=Decimal("0.50"))
    assert dividend_cash(100, action, Decimal("99")) == Decimal("50.00")
    assert dividend_cash(-100, action, Decimal("99")) == Decimal("-50.00")


def test_dividend_cash_when_amount_at_least_the_previous_close_then_error_naming_the_action():
    action = CorporateAction("AAA", "2024-03-05", cash_amount=Decimal("120"))
    with pytest.raises(CorporateActionError, match=r"AAA 2024-03-05 \(dividend 120 USD\).*not below the previous close"):
        dividend_cash(100, action, Decimal("99"))


def _splits(rows):
    return pd.DataFrame(rows, columns=["symbol", "execution_date", "split_from", "split_to"]).astype(
        {"execution_date": "datetime64[ns]"})


def _dividends(rows):
    return pd.DataFrame(rows, columns=["symbol", "ex_dividend_date", "cash_amount"]).astype(
        {"ex_dividend_date": "datetime64[ns]"})


def test_actions_from_tables_when_dates_fall_on_weekends_then_effective_sessions_and_one_action_per_session():
    # a 2-for-1 split dated Saturday 2024-03-02 and a dividend dated Sunday 03-03 both take effect
    # on Monday 03-04 and compose; another dividend on 03-04 adds to the first
    actions = actions_from_tables(_splits([("AAA", "2024-03-02", 1.0, 2.0)]),
                                  _dividends([("AAA", "2024-03-03", 0.25), ("AAA", "2024-03-04", 0.10),
                                              ("BBB", "2024-03-05", 1.0)]), symbols=["AAA"])
    assert actions == [CorporateAction("AAA", "2024-03-04", Fraction(1), Fraction(2), Decimal("0.35"))]


@pytest.mark.parametrize("splits, dividends, named", [
    ([("AAA", "2024-03-04", 1.0, 0.0)], [], r"AAA 2024-03-04 .*split 0.0:1.0 is not a ratio"),
    ([], [("AAA", "2024-03-04", float("nan"))], r"AAA 2024-03-04 .*dividend nan USD"),
    ([], [("AAA", "2024-03-04", -1.0)], r"AAA 2024-03-04 .*dividend -1.0 USD"),
])
def test_actions_from_tables_when_an_action_cannot_be_applied_then_error_naming_it(splits, dividends, named):
    with pytest.raises(CorporateActionError, match=named):
        actions_from_tables(_splits(splits), _dividends(dividends))
