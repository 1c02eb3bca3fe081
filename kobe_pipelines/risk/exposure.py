"""What the gate measures on one Book: open risk, orders not filled yet, and its own approvals.

A `BookExposure` is built once per Book object (`BookExposure.of`) and grows with every order the
gate approves against that Book, so a burst of intents cannot each pass against the same
pre-burst book. Units: USD, signed shares (+ long, - short).

- `open_risk`: the positions' open risk at the book's marks (`heat.book_open_risk`).
- `pending_qty`, `pending_risk`, `pending_buying_power`: entries not filled yet, counted as if
  filled at their price: the book's `open_orders` (working at the broker, or approved and not yet
  there) plus the entries approved against this Book since. Buying power counts only what the
  broker has not reserved already.
- `pending_exits`: per symbol, signed shares of the exit legs working at the broker
  (`Book.exit_legs`) plus the reducing orders approved since; an order reduces a position only
  after netting them (`net_position`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kobe_pipelines.risk.heat import book_open_risk, order_risk
from kobe_pipelines.risk.types import Book, OpenOrder


@dataclass
class BookExposure:
    book: Book
    equity: float | None  # USD, None when not a finite number
    buying_power: float | None
    open_risk: float  # USD, at the book's marks
    problems: tuple[str, ...]  # positions whose risk could not be measured
    pending_risk: float = 0.0
    pending_buying_power: float = 0.0
    pending_qty: dict[str, int] = field(default_factory=dict)
    pending_exits: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, book: Book) -> "BookExposure":
        risk, problems = book_open_risk(book)
        exposure = cls(book, _finite(book.equity), _finite(book.buying_power), risk, problems,
                       pending_exits=dict(book.exit_legs))
        for order in book.open_orders:
            exposure.add_open_order(order)
        return exposure

    def add_open_order(self, order: OpenOrder) -> None:
        """Count an entry not filled yet as if filled at its price."""
        sign = order.side.sign
        self.pending_qty[order.symbol] = self.pending_qty.get(order.symbol, 0) + sign * order.qty
        mark = self.book.last_prices.get(order.symbol)
        mark = mark if isinstance(mark, (int, float)) and mark > 0 else order.price
        self.pending_risk += order_risk(sign, order.qty, order.price, order.stop, mark)
        if not order.reserved:
            self.pending_buying_power += order.qty * order.price

    def add_approval(self, symbol: str, sign: int, qty: int, price: float, added_risk: float | None,
                     reducing: bool) -> None:
        """An order approved against this Book: a reducing one nets against the position, an entry
        counts like an open order."""
        if reducing:
            self.pending_exits[symbol] = self.pending_exits.get(symbol, 0) + sign * qty
            return
        self.pending_qty[symbol] = self.pending_qty.get(symbol, 0) + sign * qty
        self.pending_risk += added_risk or 0.0
        self.pending_buying_power += qty * price

    def held(self, symbol: str) -> int:
        """The book's position in `symbol`, signed shares (0 when absent or not whole shares)."""
        position = self.book.positions.get(symbol)
        return position.qty if position is not None and type(position.qty) is int else 0

    def net_position(self, symbol: str) -> int:
        """The position once the working exits trade: what an order may reduce."""
        return self.held(symbol) + self.pending_exits.get(symbol, 0)

    def position_if_filled(self, symbol: str) -> int:
        """The position once every entry not filled yet fills: what the size cap judges."""
        return self.held(symbol) + self.pending_qty.get(symbol, 0)


def _finite(value: object) -> float | None:
    import math

    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
