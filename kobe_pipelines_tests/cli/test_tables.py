"""The command line's table helper: formatting rules per kind and the 100-column limit."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.cli.tables import MAX_WIDTH, Column, format_cell, render_table


@pytest.mark.parametrize(("value", "kind", "shown"), [
    (-1234.5, "usd", "-1,234.50"),
    (1234567.891, "usd", "1,234,567.89"),
    (np.float64(-678.0), "usd", "-678.00"),
    (-0.001, "usd", "0.00"),  # rounds to zero: no "-0.00"
    (18.4907, "price", "18.4907"),  # a sub-cent fill keeps its 4 decimals
    (50.0, "price", "50.00"),
    (187.45, "price", "187.45"),
    (0.5123, "price", "0.5123"),
    (1500.25, "price", "1,500.25"),
    (-45.0, "bps", "-45.00"),
    (268.052631, "bps", "268.05"),
    (0.0043, "percent", "0.43%"),
    (0.1, "percent", "10.00%"),
    (0.041234, "number", "0.0412"),
    (-0.00001, "number", "0.0000"),
    (12345, "int", "12,345"),
    (np.int64(42), "int", "42"),
    (42.0, "int", "42"),
    (float("inf"), "usd", "inf"),
    ("K0001", "text", "K0001"),
    ("n/a yet", "usd", "n/a yet"),  # a text in a number column is shown, not hidden
    (dt.datetime(2024, 3, 4, 21, 0, 5, 123456, tzinfo=dt.timezone.utc), "time", "2024-03-04 21:00:05"),
    (pd.Timestamp("2024-03-04 21:00:05.9", tz="UTC"), "time", "2024-03-04 21:00:05"),
    (dt.date(2024, 3, 4), "time", "2024-03-04"),
])
def test_format_cell_when_kind_given_then_number_follows_its_rule(value, kind, shown):
    assert format_cell(value, kind) == shown


@pytest.mark.parametrize("missing", [None, float("nan"), np.float64("nan"), np.nan, pd.NaT, pd.NA])
@pytest.mark.parametrize("kind", ["text", "int", "usd", "price", "bps", "percent", "number", "time"])
def test_format_cell_when_value_missing_then_empty_cell(missing, kind):
    assert format_cell(missing, kind) == ""


def test_format_cell_when_kind_unknown_then_value_error_names_it():
    with pytest.raises(ValueError, match="'dollars'"):
        format_cell(1.0, "dollars")  # type: ignore[arg-type]


def test_render_table_when_text_is_long_then_every_line_fits_100_columns_and_nothing_is_lost():
    reason = " ".join(f"word{i}" for i in range(80))
    lake_version = "v20261207T054841708601Z-5276e161"
    rows = [{"symbol": "K0001", "pnl": -678.123, "fill": 18.4907, "reason": reason, "lake": lake_version}]
    text = render_table(rows, [Column("symbol", "symbol"), Column("P&L (USD)", "pnl", "usd"),
                               Column("fill", "fill", "price"), Column("reason", "reason"),
                               Column("lake version", "lake", whole=True)], title="orders")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= MAX_WIDTH
    assert lines[0] == "orders"
    assert "-678.12" in text and "18.4907" in text and lake_version in text  # the id is never broken
    assert " ".join(text.split()).count("word") == 80 and "word79" in text  # wrapped, not cut


def test_render_table_when_cells_hold_markup_or_missing_values_then_printed_literally_and_empty():
    rows = [{"a": "[bold]x[/bold]", "b": np.float64("nan"), "c": None}]
    text = render_table(rows, [Column("a", "a"), Column("b", "b", "usd"), Column("c", "c", "int")])
    assert "[bold]x[/bold]" in text
    assert "nan" not in text and "None" not in text


def test_render_table_when_numbers_then_right_aligned_under_their_header():
    rows = [{"n": 5.0}, {"n": 1234.5}]
    lines = render_table(rows, [Column("amount (USD)", "n", "usd")]).splitlines()
    header, values = lines[0], lines[2:]
    assert values == [" " * (len(header) - 4) + "5.00", " " * (len(header) - 8) + "1,234.50"]


def test_render_table_when_detail_given_then_it_goes_under_its_row_indented_and_wrapped():
    rows = [{"id": "a", "why": "approved"}, {"id": "b", "why": "rejected " * 20}, {"id": "c", "why": None}]
    lines = render_table(rows, [Column("id", "id")], detail="why").splitlines()
    assert lines[:5] == ["id", "──", "a", "  approved", ""]
    assert lines[5] == "b" and lines[6].startswith("  rejected rejected") and len(lines[6]) <= MAX_WIDTH
    assert " ".join(lines[6:8]).split() == ["rejected"] * 20 and lines[8] == ""
    assert lines[9:] == ["c"]  # no detail, and no blank line after the last row
