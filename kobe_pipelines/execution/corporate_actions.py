"""Corporate actions on the book: the rules both the paper broker and the live path apply.

Actions come from the lake version a trading run uses (its `splits` and `dividends` tables),
each on its effective XNYS session as the lake computes it (`data.adjustments.effective_sessions`:
the execution or ex-date, or the next session after a weekend or holiday). Several actions of one
symbol on one session compose as in the lake: splits multiply, cash amounts add up.

They reach the book BEFORE the session's fills:
- split, ratio r = split_to / split_from (a 4-for-1 split r = 4, a 1-for-10 reverse split
  r = 1/10, a 3-for-2 split r = 3/2): the position becomes qty x r whole shares, truncated toward
  zero; the fraction left (signed) is settled in cash at the session's raw open, "cash in lieu"
  (a long is paid, a short pays). The average entry price, the marks and every working exit
  price are divided by r. Exit prices go on the tick grid by the conservative rule of
  `orders.ticks.round_bracket`: a stop towards the market (a long's up, a short's down: the loss
  per share never grows), a take-profit towards the market (a long's down, a short's up: never
  less likely to fill). Average prices and marks stay exact Decimals (they are not order prices).
  Working exit legs keep protecting the position: their shares become trunc(shares x r).
  Open ENTRY orders are cancelled, with the split as the reason: they were decided by the gate
  in pre-split units, and a post-split order is a new decision for the next run.
- cash dividend D (USD per share, in the ex-date's share units): on its ex-date (the effective
  session) a long of q shares is credited q x D, a short debited q x D, as a cash event.
  Working exit prices are not moved for a dividend (a long's stop left at its price is tighter
  after the ex-date drop, never looser).
Equity is unchanged by an action itself: q x P = (q x r) x (P / r) for a split (the fraction
paid at the open), and the ex-date price drop is the cash paid.

An action that cannot be applied stops the trading run with `CorporateActionError` naming it: a
split ratio that is not a finite number > 0, or a dividend that is negative, not finite, or at
least the previous close in the ex-date's share units.

Delisting and stale marks (`staleness`): a held symbol with no bar for `delisted_after`
consecutive sessions (default 5) is delisted: closed at its last raw close, booked as of the
session after its last bar, with a ledger event and an alert. Fewer sessions without a bar: the
mark is stale; the position is valued at its last mark and flagged (equity reading, heat check),
never liquidated: a one-day halt does not close a position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Iterable

import pandas as pd

from kobe_pipelines.errors import KobeError
from kobe_pipelines.orders.ticks import exit_rounding, to_tick

DEFAULT_DELISTED_AFTER = 5  # sessions without a bar that make a held symbol delisted


class CorporateActionError(KobeError):
    """A corporate action that cannot be applied to the book (the trading run stops)."""

    def __init__(self, action: "CorporateAction", problem: str):
        self.action = action
        super().__init__(f"corporate action {action.describe()}: {problem}")


@dataclass(frozen=True)
class CorporateAction:
    """The composed actions of one symbol on one effective session. `split_from`/`split_to` as the
    lake stores them (1 and 4 for a 4-for-1 split); `cash_amount`: USD per post-split share."""

    symbol: str
    session: str  # YYYY-MM-DD
    split_from: Fraction = Fraction(1)
    split_to: Fraction = Fraction(1)
    cash_amount: Decimal = Decimal(0)

    @property
    def has_split(self) -> bool:
        return self.split_from != self.split_to

    @property
    def ratio(self) -> Fraction:
        """Shares after / shares before."""
        return self.split_to / self.split_from

    def describe(self) -> str:
        parts = []
        if self.has_split:
            parts.append(f"split {self.split_to}:{self.split_from}")
        if self.cash_amount:
            parts.append(f"dividend {self.cash_amount} USD")
        return f"{self.symbol} {self.session} ({', '.join(parts) or 'no change'})"


@dataclass(frozen=True)
class SplitEffect:
    qty: int  # signed shares after
    avg_entry: Decimal
    fraction: Fraction  # signed shares settled in cash
    cash: Decimal  # cash in lieu, signed: + paid to us


@dataclass(frozen=True)
class BookEvent:
    """One change an action (or a delisting) made to a position: the ledger's record of it.

    `kind`: split, dividend, delisting. `qty_before`/`qty_after`: signed shares; `cash`: USD
    into the account (cash in lieu, dividend, delisting proceeds; negative when paid);
    `price`: the price used (the open for cash in lieu, the last close for a delisting)."""

    event_id: str
    kind: str
    symbol: str
    session: str
    qty_before: int
    qty_after: int
    cash: Decimal = Decimal(0)
    price: Decimal | None = None
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"event_id": self.event_id, "kind": self.kind, "symbol": self.symbol, "session": self.session,
                "qty_before": self.qty_before, "qty_after": self.qty_after, "cash": str(self.cash),
                "price": None if self.price is None else str(self.price), "detail": dict(self.detail)}

    @classmethod
    def from_dict(cls, values: dict) -> "BookEvent":
        return cls(values["event_id"], values["kind"], values["symbol"], values["session"], int(values["qty_before"]),
                   int(values["qty_after"]), Decimal(values["cash"]),
                   None if values.get("price") is None else Decimal(values["price"]), dict(values.get("detail") or {}))


def event_id(kind: str, symbol: str, session: str) -> str:
    return f"{kind}:{symbol}:{session}"


# -- reading the lake's tables --------------------------------------------------------------
def actions_from_tables(splits: pd.DataFrame | None, dividends: pd.DataFrame | None,
                        symbols: Iterable[str] | None = None, start: str | None = None,
                        end: str | None = None) -> list[CorporateAction]:
    """The lake's splits and dividends (schema `SPLIT_COLUMNS`, `DIVIDEND_COLUMNS`) as composed
    actions per (symbol, effective session), sorted by session then symbol, limited to
    `symbols` and sessions in [start, end]. Raises `CorporateActionError` for a split ratio or
    a dividend that is not a finite number in range."""
    from kobe_pipelines.data.adjustments import effective_sessions

    wanted = None if symbols is None else set(symbols)
    composed: dict[tuple[str, str], dict] = {}
    for frame, date_column in ((splits, "execution_date"), (dividends, "ex_dividend_date")):
        if frame is None or frame.empty:
            continue
        sessions = pd.to_datetime(effective_sessions(pd.to_datetime(frame[date_column]).to_numpy()))
        for position, (row, session) in enumerate(zip(frame.itertuples(index=False), sessions)):
            symbol, day = str(row.symbol), str(pd.Timestamp(session).date())
            if (wanted is not None and symbol not in wanted) or (start and day < start) or (end and day > end):
                continue
            entry = composed.setdefault((symbol, day), {"from": Fraction(1), "to": Fraction(1), "cash": Decimal(0)})
            if date_column == "execution_date":
                split_from, split_to = _ratio_part(row.split_from), _ratio_part(row.split_to)
                if split_from is None or split_to is None:
                    raise CorporateActionError(CorporateAction(symbol, day), f"split {row.split_to}:{row.split_from} "
                                               "is not a ratio of finite numbers > 0")
                entry["from"] *= split_from
                entry["to"] *= split_to
            else:
                amount = row.cash_amount
                if not isinstance(amount, (int, float)) or not math.isfinite(amount) or amount < 0:
                    raise CorporateActionError(CorporateAction(symbol, day), f"dividend {amount!r} USD is not a "
                                               "finite amount >= 0")
                entry["cash"] += Decimal(repr(float(amount)))
    actions = [CorporateAction(symbol, day, v["from"], v["to"], v["cash"]) for (symbol, day), v in composed.items()]
    return sorted(actions, key=lambda a: (a.session, a.symbol))


def _ratio_part(value: object) -> Fraction | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        return None
    return Fraction(Decimal(repr(float(value))))


# -- the rules --------------------------------------------------------------------------------
def split_position(qty: int, avg_entry: Decimal, ratio: Fraction, open_price: Decimal) -> SplitEffect:
    """A position of `qty` signed shares through a split of `ratio` (see the module docstring)."""
    exact = Fraction(qty) * ratio
    whole = int(exact)  # toward zero
    fraction = exact - whole
    avg = avg_entry * Decimal(ratio.denominator) / Decimal(ratio.numerator)
    cash = Decimal(fraction.numerator) * open_price / Decimal(fraction.denominator)
    return SplitEffect(whole, avg, fraction, cash)


def split_shares(shares: int, ratio: Fraction) -> int:
    """Shares of a working exit leg after a split: trunc(shares x r)."""
    return int(Fraction(shares) * ratio)


def split_price(price: Decimal, ratio: Fraction) -> Decimal:
    """A mark or an average price after a split: price / r, exact."""
    return price * Decimal(ratio.denominator) / Decimal(ratio.numerator)


def split_exit_price(price: Decimal, ratio: Fraction, position_sign: int, leg: str) -> Decimal:
    """A working exit price ("stop" or "take_profit") after a split, on the tick grid by the
    conservative rule (see the module docstring)."""
    return to_tick(split_price(price, ratio), exit_rounding(position_sign, leg), leg, "split")


def dividend_cash(qty: int, action: CorporateAction, previous_close: Decimal | None) -> Decimal:
    """Cash a position of `qty` signed shares receives (long) or pays (short) on the ex-date.
    `previous_close`: the last close in the ex-date's share units; a dividend at least that
    large raises `CorporateActionError`."""
    if previous_close is not None and action.cash_amount >= previous_close:
        raise CorporateActionError(action, f"dividend {action.cash_amount} USD is not below the previous close "
                                   f"{previous_close} USD (an amount in another share basis?)")
    return qty * action.cash_amount


def check_split(action: CorporateAction) -> None:
    if not action.ratio > 0:
        raise CorporateActionError(action, "split ratio must be > 0")
