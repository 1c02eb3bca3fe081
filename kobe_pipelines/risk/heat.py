"""Portfolio heat: the open risk of the book as a fraction of account equity.

Open risk of one position, USD, measured from the current mark (not from the entry):
- long  (qty > 0): qty x max(0, mark - stop)
- short (qty < 0): |qty| x max(0, stop - mark)
- no stop: the whole market value |qty| x mark (a position without a stop is the riskiest,
  never "zero risk").
Heat = sum of open risk / equity. With equity <= 0 no new risk is allowed at all.

Risk an order adds, USD: qty x |entry - stop|, or qty x entry without a stop, except that the
price is taken as the worse of the entry and the current mark (for a buy the higher, for a sell
the lower): once filled, the position is measured from the mark, and an order approved by
its entry alone could leave the book over the cap at today's marks. An order that only reduces
a position adds none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kobe_pipelines.errors import shown_value
from kobe_pipelines.risk.types import Book, Position

# Relative tolerance on cap comparisons, so float noise at exactly the cap does not reject.
CAP_TOLERANCE = 1e-9


def position_risk(position: Position, mark: float) -> float:
    """Open risk of `position` at `mark` (USD per share), USD."""
    qty, stop = position.qty, position.stop
    if stop is None:
        return abs(qty) * mark
    if qty > 0:
        return qty * max(0.0, mark - stop)
    if qty < 0:
        return -qty * max(0.0, stop - mark)
    return 0.0


def book_open_risk(book: Book) -> tuple[float, tuple[str, ...]]:
    """Sum of open risk over the book's positions, USD, and the positions it could not measure
    (no usable mark, a bad quantity or stop). Callers must refuse new risk when the second item
    is not empty: an unmeasured position can hide any amount of risk."""
    total = 0.0
    problems: list[str] = []
    marks = book.last_prices
    for key, position in book.positions.items():
        qty, stop = position.qty, position.stop
        if isinstance(qty, bool) or not isinstance(qty, int):
            problems.append(f"position {key}: field 'qty' must be whole shares (got {shown_value(qty)})")
            continue
        if qty == 0:
            continue
        mark = marks.get(position.symbol)
        if not _positive(mark):
            problems.append(f"position {key}: no usable mark in book.last_prices (got {shown_value(mark)})")
            continue
        if stop is not None and not _positive(stop):
            problems.append(f"position {key}: field 'stop' must be a price > 0 or None (got {shown_value(stop)})")
            continue
        total += position_risk(position, mark)
    return total, tuple(problems)


def order_risk(side_sign: int, qty: int, entry: float, stop: float | None, mark: float) -> float:
    """Risk a new (not reducing) order adds, USD; see the module docstring."""
    if side_sign > 0:
        price = max(entry, mark)
        return qty * (price if stop is None else max(0.0, price - stop))
    price = min(entry, mark)
    if stop is None:
        return qty * max(entry, mark)
    return qty * max(0.0, stop - price)


def is_reducing(position_qty: int, side_sign: int, qty: int) -> bool:
    """True when the order moves an existing position toward zero without flipping it."""
    return position_qty != 0 and (position_qty > 0) != (side_sign > 0) and qty <= abs(position_qty)


@dataclass(frozen=True)
class HeatReport:
    open_risk: float  # USD
    equity: float  # USD
    problems: tuple[str, ...]

    @property
    def heat(self) -> float:
        """Open risk / equity, a fraction; infinite when equity <= 0 or a position is unmeasured."""
        if self.problems or not self.equity > 0:
            return math.inf
        return self.open_risk / self.equity


def portfolio_heat(book: Book) -> HeatReport:
    risk, problems = book_open_risk(book)
    return HeatReport(risk, book.equity, problems)


def within_cap(risk: float, equity: float, cap: float) -> bool:
    """risk / equity <= cap (with `CAP_TOLERANCE`); never true when equity <= 0."""
    return equity > 0 and risk <= cap * equity * (1 + CAP_TOLERANCE)


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
