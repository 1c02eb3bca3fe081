"""The one way the command line prints a table: at most 100 columns wide, numbers as numbers.

A table is a list of `Column`s (header, the row key it reads, the kind of value) and rows as
mappings. Long text wraps inside its cell, so no line is wider than 100 columns; a column marked
`whole` (an id to copy) is never broken. Cells are formatted by kind:

| kind      | rule                                                              | example     |
|-----------|-------------------------------------------------------------------|-------------|
| `text`    | as is                                                             | filled      |
| `int`     | whole number, thousands separators                                | 12,345      |
| `usd`     | USD amount, 2 decimals, thousands separators                      | -1,234.50   |
| `price`   | USD per share: 2 decimals, 4 when the price has sub-cent digits   | 18.4907     |
| `bps`     | basis points, 2 decimals                                          | -45.00      |
| `percent` | a fraction shown as percent, 2 decimals                           | 12.34%      |
| `number`  | a ratio or score, 4 decimals                                      | 0.0412      |
| `time`    | a timestamp to the second (say the time zone in the header)       | 2024-03-04 21:00:00 |

A missing value (None, NaN, NaT, pandas' NA) is an empty cell, never `nan` or `None`.
Numeric kinds are right-aligned and never wrap. A long text that belongs to a row (a reason, a
subject) can go under its row, across the whole width (`detail=`), instead of into a narrow column.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import numbers
import textwrap
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

import click

MAX_WIDTH = 100

Kind = Literal["text", "int", "usd", "price", "bps", "percent", "number", "time"]
NUMERIC_KINDS = frozenset({"int", "usd", "price", "bps", "percent", "number"})


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    kind: Kind = "text"
    whole: bool = False  # an id to copy: never folded (other columns wrap to make room)


def is_missing(value: Any) -> bool:
    """None, a NaN float (numpy's too), pandas' NaT and NA."""
    if value is None:
        return True
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return math.isnan(float(value))
    import pandas as pd

    return value is pd.NaT or value is pd.NA


def format_cell(value: Any, kind: Kind = "text") -> str:
    """`value` as the cell of a `kind` column (the rules in the module docstring)."""
    if is_missing(value):
        return ""
    if kind == "text":
        return str(value)
    if kind == "time":
        return _time(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)  # a text where a number was expected is shown, not hidden
    number = float(value)
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if kind == "int":
        text = f"{int(number):,}" if number.is_integer() else f"{number:,.4f}"
    elif kind in ("usd", "bps"):
        text = f"{number:,.2f}"
    elif kind == "price":
        cents = number * 100
        text = f"{number:,.2f}" if abs(cents - round(cents)) < 1e-6 else f"{number:,.4f}"
    elif kind == "percent":
        text = f"{number * 100:,.2f}%"
    elif kind == "number":
        text = f"{number:,.4f}"
    else:
        raise ValueError(f"column kind must be one of {sorted(NUMERIC_KINDS | {'text', 'time'})} (got {kind!r})")
    return text[1:] if text.startswith("-") and text.strip("-0.,%") == "" else text  # no "-0.00"


def _time(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


_ROW_MARK = "\ue000"  # a private-use character: the rule between rows, replaced by the row's detail


def render_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column], *, title: str | None = None,
                 detail: str | None = None, width: int | None = None) -> str:
    """The table as text, each line at most `width` columns (default 100, whatever the terminal: a
    narrower one wraps the lines rather than this cutting off numbers).

    `detail` names a row key whose text (a reason, a long message) is printed under its row, across
    the whole width and indented, instead of squeezing into a column.
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    rows = list(rows)
    width = width or MAX_WIDTH
    between_rows = _ROW_MARK * 4 if detail is not None else "    "
    frame = box.Box("    \n    \n ── \n    \n" + between_rows + "\n    \n    \n    \n")
    table = Table(box=frame, title=title, title_justify="left", show_edge=False, pad_edge=False,
                  collapse_padding=True, show_lines=detail is not None)
    for column in columns:
        numeric = column.kind in NUMERIC_KINDS
        table.add_column(column.header, justify="right" if numeric else "left", no_wrap=numeric or column.whole,
                         overflow="fold")
    for row in rows:
        table.add_row(*[Text(" ".join(format_cell(row.get(c.key), c.kind).splitlines())) for c in columns])
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, highlight=False, markup=False,
                      emoji=False, soft_wrap=False, force_terminal=False)
    console.print(table)
    lines = [line.rstrip() for line in buffer.getvalue().splitlines()]
    if detail is None:
        return "\n".join(lines)
    details = iter([_detail_lines(row.get(detail), width) for row in rows])
    out: list[str] = []
    for line in lines:
        if line.strip(_ROW_MARK + " "):
            out.append(line)
        else:  # the rule after a row: that row's detail, then a blank line
            out.extend([*next(details), ""])
    out.extend(next(details, []))  # the last row has no rule after it
    return "\n".join(out)


def _detail_lines(text: Any, width: int) -> list[str]:
    shown = format_cell(text)
    if not shown:
        return []
    return textwrap.wrap(shown, width=width, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)


def echo_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column], *, title: str | None = None,
               detail: str | None = None) -> None:
    click.echo(render_table(rows, columns, title=title, detail=detail))
