"""The actions a freeze applies: those of the symbols and sessions it holds."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from kobe_pipelines.defs.lake.keep_aside import HeldScope, actions_in_scope

SCOPE = HeldScope(frozenset({"AAA", "CCC"}), dt.date(2024, 1, 8), dt.date(2024, 3, 28))


def test_actions_in_scope_when_symbol_or_date_lies_outside_then_kept_aside_with_the_reason():
    splits = pd.DataFrame({"symbol": ["AAA", "BBB", "AAA"], "execution_date": pd.to_datetime(["2024-02-01", "2024-02-01", "2024-04-01"]),
                           "split_from": 1.0, "split_to": 2.0})
    dividends = pd.DataFrame({"symbol": ["CCC", "CCC", "CCC"],
                              "ex_dividend_date": pd.to_datetime(["2024-01-07", "2024-01-05", "2024-03-28"]),
                              "cash_amount": 0.5})
    scoped = actions_in_scope(splits, dividends, SCOPE)
    assert scoped.splits["execution_date"].tolist() == [pd.Timestamp("2024-02-01")] and scoped.splits["symbol"].tolist() == ["AAA"]
    # a Sunday ex-date (01-07) applies on Monday's first session; the Friday before does not
    assert scoped.dividends["ex_dividend_date"].tolist() == [pd.Timestamp("2024-01-07"), pd.Timestamp("2024-03-28")]
    reasons = sorted(zip(scoped.kept_aside["symbol"], scoped.kept_aside["reason"]))
    assert reasons == [("AAA", "after the last session held (2024-03-28)"), ("BBB", "no bars of the symbol in this freeze"),
                       ("CCC", "before the first session held (2024-01-08)")]
    assert scoped.kept_aside_count == 3
