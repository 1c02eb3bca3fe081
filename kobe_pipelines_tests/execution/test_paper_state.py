"""The paper broker's state file (kobe_pipelines/execution/paper_state.py): refused when corrupt,
never reset; only a regular file is read (kobe_pipelines/regular_files.py)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from kobe_pipelines.data.schema import BAR_COLUMNS
from kobe_pipelines.errors import StateFileError
from kobe_pipelines.execution.paper import STATE_NAME, PaperBroker
from kobe_pipelines.execution.paper_state import check_state
from kobe_pipelines_tests.support.hostile_files import NOT_REGULAR, WORDS, place


def book_file(**fields) -> dict:
    """A valid paper book (format 2) holding one filled long position, with `fields` replaced."""
    book = {"format": 2, "starting_cash": "100000.0", "cash": "99000.0", "seq": 1, "last_session": "2024-03-04",
            "orders": {}, "positions": {"AAA": {"qty": 10, "avg_entry": "100.0"}}, "marks": {"AAA": "101.5"},
            "last_bar": {}, "book_events": [],
            "fills": [{"fill_id": "o-1:entry", "client_order_id": "o-1", "leg": "entry", "symbol": "AAA", "side": "buy",
                       "qty": 10, "price": "100.0", "expected_price": "100.0", "filled_at": "2024-03-04T14:30:00+00:00",
                       "session": "2024-03-04", "broker": "paper", "realized_pnl": None}]}
    book.update(fields)
    return book


def test_check_state_when_the_book_is_valid_then_returns_it_unchanged(tmp_path):
    assert check_state(tmp_path / STATE_NAME, book_file()) == book_file()


@pytest.mark.parametrize("cash", ["NaN", "nan", "-Infinity", "Infinity", "sNaN", "1E+999999", "1e15", "-2e15", "1E-999999"])
def test_check_state_when_cash_is_not_a_finite_amount_in_range_then_refuses_naming_the_field(tmp_path, cash):
    with pytest.raises(StateFileError, match=f"field 'cash' .*'{re.escape(cash)}'"):
        check_state(tmp_path / STATE_NAME, book_file(cash=cash))


def test_check_state_when_cash_is_negative_zero_then_accepts_it_as_zero(tmp_path):
    # Decimal arithmetic writes "-0.0000" itself (a short covered at its own average entry).
    assert check_state(tmp_path / STATE_NAME, book_file(cash="-0"))["cash"] == "-0"


@pytest.mark.parametrize(("fields", "named"), [
    ({"starting_cash": "0"}, "field 'starting_cash' must be > 0"),
    ({"positions": {"AAA": {"qty": 10, "avg_entry": "Infinity"}}}, "position AAA: field 'avg_entry'"),
    ({"positions": {"AAA": {"qty": 10.5, "avg_entry": "100"}}}, "position AAA: field 'qty'"),
    ({"positions": {"AAA": {"qty": 2**63, "avg_entry": "100"}}}, "position AAA: field 'qty'"),
    ({"marks": {"AAA": "NaN"}}, "marks AAA: field 'close'"),
    ({"marks": {"AAA": 101.5}}, "marks AAA: field 'close' must be a decimal text"),
])
def test_check_state_when_a_position_or_mark_is_malformed_then_refuses_naming_record_and_field(tmp_path, fields, named):
    with pytest.raises(StateFileError, match=named):
        check_state(tmp_path / STATE_NAME, book_file(**fields))


@pytest.mark.parametrize(("name", "value"), [("price", "NaN"), ("expected_price", "-1"), ("realized_pnl", "Infinity"),
                                             ("qty", 0)])
def test_check_state_when_a_fill_is_malformed_then_refuses_naming_fill_and_field(tmp_path, name, value):
    fill = dict(book_file()["fills"][0], **{name: value})
    with pytest.raises(StateFileError, match=f"fill 1 \\(o-1:entry\\): field '{name}'"):
        check_state(tmp_path / STATE_NAME, book_file(fills=[fill]))


def test_paper_broker_when_cash_is_nan_then_refuses_to_open_and_keeps_the_file(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    text = json.dumps(book_file(cash="NaN"))
    (state / STATE_NAME).write_text(text)
    with pytest.raises(StateFileError, match=f"{STATE_NAME}: field 'cash' must be a finite amount"):
        PaperBroker(state)
    assert (state / STATE_NAME).read_text() == text


@pytest.mark.timeout(20)  # a FIFO opened for reading would wait for a writer forever
@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_paper_broker_when_book_path_is_not_a_regular_file_then_refuses_and_never_starts_a_fresh_book(tmp_path, kind):
    state = tmp_path / "state"
    state.mkdir()
    place(kind, state / STATE_NAME, json.dumps(book_file()).encode())
    with pytest.raises(StateFileError, match=re.escape(WORDS[kind])):
        PaperBroker(state)
    assert not (state / STATE_NAME).is_file() or (state / STATE_NAME).is_symlink()  # not replaced by a fresh book


def test_paper_broker_when_a_dangling_link_is_the_book_then_advance_does_not_write_a_fresh_account(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / STATE_NAME).symlink_to(tmp_path / "moved-away.json")
    with pytest.raises(StateFileError):
        PaperBroker(state).advance(pd.DataFrame(columns=BAR_COLUMNS))
    assert (state / STATE_NAME).is_symlink()
