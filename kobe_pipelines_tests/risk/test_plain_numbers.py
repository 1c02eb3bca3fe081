"""Gate reasons, heat problems and audit records show numbers as plain numbers: a value that
arrives as a numpy scalar reads `NaN` or `7`, never `np.float64(nan)` or `np.int64(7)`."""

from __future__ import annotations

import numpy as np

from kobe_pipelines.risk import Position
from kobe_pipelines.risk.audit import read_audit_log
from kobe_pipelines.risk.heat import book_open_risk
from kobe_pipelines_tests.risk.conftest import buy, check, make_book


def test_fields_when_prices_are_numpy_nan_then_reason_reads_nan(make_gate):
    decision = make_gate().decide(buy("AAPL", 10, np.float64("nan"), stop=np.float64("nan")), make_book())
    reason = check(decision, "fields").reason
    assert "field 'entry' must be a finite price > 0 USD per share (got NaN)" in reason
    assert "field 'stop' must be a finite price > 0 USD per share (got NaN)" in reason
    assert "np." not in reason


def test_quantity_when_numpy_fraction_or_negative_then_reason_reads_the_number(make_gate):
    gate = make_gate()
    fraction = check(gate.decide(buy("AAPL", np.float64(2.5), 100.0), make_book()), "quantity").reason
    negative = check(gate.decide(buy("AAPL", np.int64(-7), 100.0), make_book()), "quantity").reason
    assert fraction == "field 'qty' must be a whole number of shares (got 2.5)"
    assert negative == "field 'qty' must be a positive number of shares (got -7)"


def test_heat_when_equity_is_numpy_nan_then_reason_reads_nan(make_gate):
    result = check(make_gate().decide(buy("AAPL", 1, 100.0, stop=99.0), make_book(equity=np.float64("nan"))), "heat")
    assert not result.passed
    assert result.reason == "equity NaN USD is not positive: no new risk"


def test_book_open_risk_when_mark_and_stop_are_numpy_values_then_problems_read_plain_numbers():
    book = make_book([Position("ZZZ", 100, 10.0, 9.0), Position("MSFT", 5, 190.0, np.float64(-1.0))],
                     marks={"ZZZ": np.float64("nan")})
    total, problems = book_open_risk(book)
    assert total == 0.0
    assert problems == ("position ZZZ: no usable mark in book.last_prices (got NaN)",
                        "position MSFT: field 'stop' must be a price > 0 or None (got -1.0)")


def test_audit_record_when_intent_field_is_numpy_nan_then_invalid_value_reads_nan(make_gate, state):
    make_gate().decide(buy("AAPL", 10, np.float64("nan"), client_order_id="nan-np"), make_book())
    row = read_audit_log(state).iloc[-1]
    assert row["client_order_id"] == "nan-np" and row["invalid"] == {"entry": "NaN"}
