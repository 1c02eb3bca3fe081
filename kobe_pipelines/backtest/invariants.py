"""Invariants a backtest checks at every session's close (pure functions over plain records).

A breach raises `InvariantBreach` naming the session, the symbol (or "account") and both numbers;
the backtest stops there. Money is USD, prices USD per share, quantities signed whole shares.

- account identity: cash + sum(qty x mark) = equity as the broker reports it;
- recomputation: an `IndependentBook` replays the raw closes, the fills, the dividends, the splits
  (with cash in lieu) and the delistings by the book's published rules, written here again (not
  calling the broker's code), and must agree with the broker on every position, on cash and on equity;
- split continuity: a held position's value is the same across a split (no P&L from the split
  itself): qty_after x (prev_close x split_from / split_to) + cash in lieu = qty_before x prev_close,
  up to the fraction paid in lieu being valued at the open instead of the previous close;
  its stop moves by the same ratio (on the tick grid, at most one tick towards the price);
- no position changes sign through an exit (a stop, a take-profit or a reducing order);
- every open position has a live stop covering it (unless the strategy trades without one);
- every order submitted has an intent and an approved gate decision recorded before it;
- `cap_excesses`: positions and heat above the gate's caps at the close, reported with the
  numbers (price moves after an approval can push a position over its cap: not a failure).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import pandas as pd

from kobe_pipelines.errors import KobeError

ACCOUNT = "account"
MONEY_TOLERANCE = 0.01  # USD: the broker's Decimal book against a float recomputation
PRICE_TICK = 0.01


class InvariantBreach(KobeError):
    """An invariant failed at a session's close; the message names the session, the symbol and both numbers."""

    def __init__(self, invariant: str, session: str, symbol: str, expected: float, actual: float, detail: str = ""):
        self.invariant = invariant
        self.session = session
        self.symbol = symbol
        self.expected = expected
        self.actual = actual
        more = f"; {detail}" if detail else ""
        super().__init__(f"invariant '{invariant}' breached on {session} for {symbol}: expected {expected!r}, "
                         f"got {actual!r}{more}")


def _close(a: float, b: float, tolerance: float = MONEY_TOLERANCE) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tolerance + 1e-12 * max(abs(a), abs(b))


def check_account_identity(session: str, cash: float, positions: Mapping[str, int], marks: Mapping[str, float],
                           equity: float) -> None:
    """cash + sum(qty x mark) must equal the broker's equity."""
    total = cash
    for symbol, qty in positions.items():
        mark = marks.get(symbol)
        if mark is None or not math.isfinite(mark):
            raise InvariantBreach("account identity", session, symbol, float(qty), float("nan"), "a held symbol has no mark")
        total += qty * mark
    if not _close(total, equity):
        raise InvariantBreach("account identity", session, ACCOUNT, round(total, 6), round(equity, 6),
                              "cash + sum(qty x mark) against the broker's equity")


@dataclass
class IndependentBook:
    """Cash, positions and marks replayed from the raw bars, fills and corporate actions (module
    docstring), USD, by the book's published rules (`execution.corporate_actions`) written again here.

    Split, ratio r = split_to / split_from: qty x r, the whole shares toward zero kept and the
    fraction paid in cash at the session's raw open (without a bar that session: the last close / r),
    a long receiving it, a short paying it; the mark divided by r. Dividend: qty x cash_amount on
    the ex-date, in post-split shares, before that session's fills. Delisting: a held symbol
    without a bar for `delisted_after` sessions in a row is closed at its last raw close.
    `closes`: the last raw close of each held symbol (in today's share units)."""

    cash: float
    positions: dict[str, int] = field(default_factory=dict)
    closes: dict[str, float] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)  # sessions in a row without a bar, per held symbol

    def apply_split(self, symbol: str, split_from: float | Fraction, split_to: float | Fraction,
                    open_price: float | None) -> float:
        """Returns the cash in lieu paid (USD, signed: + to us)."""
        ratio = _fraction(split_to) / _fraction(split_from)
        if symbol in self.closes:
            self.closes[symbol] = float(Fraction(repr(self.closes[symbol])) / ratio)
        qty = self.positions.get(symbol, 0)
        if qty == 0:
            return 0.0
        exact = qty * ratio
        whole = int(exact)  # toward zero
        price = open_price if open_price is not None and math.isfinite(open_price) else self.closes.get(symbol, math.nan)
        lieu = float(exact - whole) * price
        self.cash += lieu
        self._set(symbol, whole)
        return lieu

    def apply_dividend(self, symbol: str, cash_amount: float) -> float:
        paid = self.positions.get(symbol, 0) * cash_amount
        self.cash += paid
        return paid

    def apply_fill(self, symbol: str, signed_qty: int, price: float) -> None:
        self.cash -= signed_qty * price
        self._set(symbol, self.positions.get(symbol, 0) + signed_qty)

    def close_out(self, symbol: str, price: float) -> None:
        qty = self.positions.get(symbol, 0)
        if qty:
            self.apply_fill(symbol, -qty, price)

    def mark(self, closes: Mapping[str, float], delisted_after: int) -> list[str]:
        """The session's raw closes (every symbol that traded) at its close: each held symbol's
        mark moves to its close; one without a bar for `delisted_after` sessions in a row is closed
        out at its last close. Returns the symbols delisted."""
        gone = []
        for symbol in list(self.positions):
            close = closes.get(symbol)
            if close is not None:
                self.closes[symbol], self.missing[symbol] = float(close), 0
                continue
            self.missing[symbol] = self.missing.get(symbol, 0) + 1
            if self.missing[symbol] >= delisted_after:
                self.close_out(symbol, self.closes[symbol])
                gone.append(symbol)
        return gone

    def equity(self, marks: Mapping[str, float] | None = None) -> float:
        """Cash plus every position at `marks` (default: its own last closes)."""
        prices = self.closes if marks is None else marks
        return self.cash + sum(qty * prices[s] for s, qty in self.positions.items())

    def _set(self, symbol: str, qty: int) -> None:
        if qty:
            self.positions[symbol] = qty
        else:
            self.positions.pop(symbol, None)
            self.missing.pop(symbol, None)


def _fraction(value: float | Fraction) -> Fraction:
    return value if isinstance(value, Fraction) else Fraction(repr(float(value)))


def check_recomputed(session: str, book: IndependentBook, positions: Mapping[str, int], cash: float,
                     equity: float) -> None:
    """The broker's positions, cash and equity against the independent replay (valued at its own
    last raw closes)."""
    for symbol in sorted(set(book.positions) | set(positions)):
        mine, theirs = book.positions.get(symbol, 0), positions.get(symbol, 0)
        if mine != theirs:
            raise InvariantBreach("recomputed position", session, symbol, mine, theirs,
                                  "shares from the fills and corporate actions against the broker's")
    if not _close(book.cash, cash):
        raise InvariantBreach("recomputed cash", session, ACCOUNT, round(book.cash, 6), round(cash, 6),
                              "cash from the fills, dividends and cash in lieu against the broker's")
    mine = book.equity()
    if not _close(mine, equity):
        raise InvariantBreach("recomputed equity", session, ACCOUNT, round(mine, 6), round(equity, 6))


@dataclass(frozen=True)
class SplitMove:
    """One held position through a split session, as the broker reports it."""

    symbol: str
    split_from: float
    split_to: float
    prev_close: float  # raw close before the split (pre-split shares)
    open_price: float  # raw open of the split session (post-split shares)
    qty_before: int
    qty_after: int  # after the split, before the session's fills
    cash_in_lieu: float  # USD paid to us (+) or by us (-)
    stop_before: float | None = None
    stop_after: float | None = None


def check_split_continuity(session: str, move: SplitMove) -> None:
    """No P&L from a split itself; the stop moves by the split's ratio (module docstring)."""
    ratio = move.split_from / move.split_to  # post-split price per pre-split price
    before = move.qty_before * move.prev_close
    after = move.qty_after * move.prev_close * ratio + move.cash_in_lieu
    fraction = move.qty_before / ratio - move.qty_after
    allowed = abs(fraction) * abs(move.open_price - move.prev_close * ratio)
    if not _close(before, after, MONEY_TOLERANCE + allowed):
        raise InvariantBreach("split continuity", session, move.symbol, round(before, 6), round(after, 6),
                              f"position value at the previous close before and after the split "
                              f"{move.split_to:g}-for-{move.split_from:g} (qty {move.qty_before} -> {move.qty_after})")
    if move.stop_before is not None and move.qty_after != 0:  # a position paid out whole in lieu needs no stop
        expected = move.stop_before * ratio
        tick = PRICE_TICK if expected >= 1 else 0.0001
        # towards the market, never looser: a long's stop at most a tick above, a short's at most a tick below
        low, high = (expected, expected + tick) if move.qty_after > 0 else (expected - tick, expected)
        if move.stop_after is None or not low - 1e-9 <= move.stop_after <= high + 1e-9:
            raise InvariantBreach("split stop", session, move.symbol, round(expected, 6),
                                  float("nan") if move.stop_after is None else move.stop_after,
                                  f"the stop {move.stop_before} x {ratio:g}, moved at most one tick towards the price")


def check_no_sign_flip(session: str, before: Mapping[str, int], after: Mapping[str, int], exited: Iterable[str]) -> None:
    """No symbol with an exit fill this session went from long to short or back."""
    for symbol in sorted(set(exited)):
        start, end = before.get(symbol, 0), after.get(symbol, 0)
        if start * end < 0:
            raise InvariantBreach("no sign change through an exit", session, symbol, start, end,
                                  "shares at the session's start and at its close")


def check_live_stops(session: str, positions: Mapping[str, int], stops: Mapping[str, float | None]) -> None:
    """Every open position has a working stop covering all of its shares (`stops[symbol]` not None)."""
    for symbol in sorted(positions):
        if positions[symbol] and stops.get(symbol) is None:
            raise InvariantBreach("live stop", session, symbol, positions[symbol], 0,
                                  "shares held against shares covered by a working stop")


def check_orders_decided(events: pd.DataFrame, approved_decisions: set[str], session: str) -> None:
    """Every `submitted` ledger event follows an `intent` and an approved `decision` of the same
    client order id (lower `seq`), whose decision id is approved in the gate's audit log.
    `events`: the ledger's rows (seq, event, client_order_id, symbol, status, decision_id)."""
    rows = list(events.itertuples(index=False))
    by_id: dict[str, list] = {}
    for row in rows:
        by_id.setdefault(row.client_order_id, []).append(row)
    for row in (r for r in rows if r.event == "submitted"):
        earlier = [r for r in by_id[row.client_order_id] if r.seq < row.seq]
        intents = [r for r in earlier if r.event == "intent"]
        decisions = [r for r in earlier if r.event == "decision" and r.status == "approved"]
        symbol = str(row.symbol)
        if not intents:
            raise InvariantBreach("intent before submission", session, symbol, int(row.seq), -1,
                                  f"order {row.client_order_id}: submission seq against the intent's (none)")
        if not decisions:
            raise InvariantBreach("approved decision before submission", session, symbol, int(row.seq), -1,
                                  f"order {row.client_order_id}: submission seq against an approved decision's (none)")
        if row.decision_id not in approved_decisions:
            raise InvariantBreach("decision in the audit log", session, symbol, 1, 0,
                                  f"order {row.client_order_id}: decision {row.decision_id} is not approved in the audit log")


@dataclass(frozen=True)
class CapExcess:
    session: str
    symbol: str  # or "account" for heat
    measure: str  # position_fraction | heat
    value: float  # fraction of equity at the close
    cap: float


def cap_excesses(session: str, positions: Mapping[str, int], marks: Mapping[str, float], equity: float, heat: float,
                 max_position_fraction: float, max_heat: float) -> list[CapExcess]:
    """Positions and heat above the gate's caps at the close (reported, never a failure: the gate
    judged each order at its entry price; prices moved since)."""
    out = []
    if equity > 0:
        for symbol in sorted(positions):
            fraction = abs(positions[symbol] * marks.get(symbol, float("nan"))) / equity
            if fraction > max_position_fraction:
                out.append(CapExcess(session, symbol, "position_fraction", fraction, max_position_fraction))
    if heat > max_heat:
        out.append(CapExcess(session, ACCOUNT, "heat", heat, max_heat))
    return out
