"""The strategy interface, the deterministic intent id, and the intent validator.

A strategy turns a `StrategyContext` (signals, bars, book, trading date, risk budget) into
`OrderIntent`s. Nothing it returns is trusted: `validate_intents` rejects malformed intents
with a reason naming the field before anything reaches the policy gate, and the gate then
judges the rest against the account.

Conventions: prices USD per share on the tick grid (see `ticks`); `qty` whole shares, always
positive (the side carries the direction).
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kobe_pipelines.risk.types import OrderIntent, OrderType, Side
from kobe_pipelines.strategies.context import RiskBudget, StrategyContext
from kobe_pipelines.strategies.ticks import is_on_tick

__all__ = [
    "MAX_CLIENT_ORDER_ID_LEN",
    "IntentProblem",
    "RejectedIntent",
    "RiskBudget",
    "Strategy",
    "StrategyContext",
    "intent_id",
    "validate_intents",
]

logger = logging.getLogger(__name__)

MAX_CLIENT_ORDER_ID_LEN = 64
_CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def intent_id(strategy: str, symbol: str, trading_date: str, side: Side | str) -> str:
    """Deterministic client order id: the same inputs always give the same id (at most 64 chars).

    One id per (strategy, symbol, session, side): the strategy's version is deliberately left out,
    so a re-run after an edit cannot place a second order for the same symbol and session (the
    broker returns the existing one). Quantities and prices are left out for the same reason.

    Shape ``YYYYMMDD-SYMBOL-side-<20 hex of sha256>``; the hash covers all four inputs, the
    readable prefix only helps a person reading a broker's order list. The symbol part keeps
    only ``[A-Za-z0-9.]`` and at most 12 characters (the hash still covers the full symbol).
    """
    side_value = Side(side).value
    payload = json.dumps([strategy, symbol, trading_date, side_value], separators=(",", ":"))
    digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:20]
    readable_symbol = re.sub(r"[^A-Za-z0-9.]", "", symbol)[:12] or "X"
    return f"{trading_date.replace('-', '')}-{readable_symbol}-{side_value}-{digest}"


class Strategy(abc.ABC):
    """Base class of strategies. Subclasses set `name` and implement `generate`.

    The registry also accepts any object with a string `name` and a callable
    `generate(ctx) -> list[OrderIntent]`; subclassing only adds the `make_intent` helper.
    `generate` must be deterministic (same context, same intents) and must not send anything.
    """

    name: str = ""

    @abc.abstractmethod
    def generate(self, ctx: StrategyContext) -> list[OrderIntent]:
        """Order intents for `ctx.trading_date`, each stamped with `ctx.strategy_version`."""

    def make_intent(
        self,
        ctx: StrategyContext,
        symbol: str,
        side: Side,
        qty: int,
        entry: float,
        stop: float | None = None,
        take_profit: float | None = None,
        order_type: OrderType = OrderType.LIMIT,
    ) -> OrderIntent:
        """An intent carrying this strategy's name and version and a deterministic client order id."""
        return OrderIntent(
            client_order_id=intent_id(self.name, symbol, ctx.trading_date, side),
            symbol=symbol,
            side=side,
            qty=qty,
            entry=entry,
            stop=stop,
            take_profit=take_profit,
            order_type=order_type,
            strategy=self.name,
            strategy_version=ctx.strategy_version,
            trading_date=ctx.trading_date,
        )


@dataclass(frozen=True)
class IntentProblem:
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


@dataclass(frozen=True)
class RejectedIntent:
    """An intent refused before the gate, with every problem found (each names its field)."""

    intent: Any
    problems: tuple[IntentProblem, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(p.field for p in self.problems)

    @property
    def reason(self) -> str:
        return "; ".join(str(p) for p in self.problems)

    def describe(self) -> str:
        if isinstance(self.intent, OrderIntent):
            label = f"{self.intent.client_order_id} ({self.intent.side!s} {self.intent.qty!r} {self.intent.symbol})"
        else:
            label = f"<{type(self.intent).__name__}>"
        return f"intent {label}: {self.reason}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _price_problems(name: str, value: Any, required: bool) -> list[IntentProblem]:
    if value is None:
        return [IntentProblem(name, "is required")] if required else []
    if not _is_number(value):
        return [IntentProblem(name, f"must be a number of USD per share (got {type(value).__name__} {value!r})")]
    if not math.isfinite(value) or value <= 0:
        return [IntentProblem(name, f"must be a finite price above 0 (got {value!r})")]
    if not is_on_tick(value):
        return [IntentProblem(name, f"{value!r} is not on the tick grid ($0.01 at/above $1, $0.0001 below)")]
    return []


def _problems(intent: Any, ctx: StrategyContext, strategy: str | None) -> list[IntentProblem]:
    if not isinstance(intent, OrderIntent):
        return [IntentProblem("intent", f"must be a risk.types.OrderIntent (got {type(intent).__name__})")]
    out: list[IntentProblem] = []
    coid = intent.client_order_id
    if not isinstance(coid, str) or not _CLIENT_ORDER_ID.fullmatch(coid):
        out.append(IntentProblem("client_order_id", f"must be 1-{MAX_CLIENT_ORDER_ID_LEN} of [A-Za-z0-9._:-] (got {coid!r})"))
    if not isinstance(intent.symbol, str) or intent.symbol not in ctx.symbols:
        out.append(IntentProblem("symbol", f"{intent.symbol!r} has no bars in this run"))
    side_ok = isinstance(intent.side, Side)
    if not side_ok:
        out.append(IntentProblem("side", f"must be Side.BUY or Side.SELL (got {intent.side!r})"))
    if not isinstance(intent.order_type, OrderType):
        out.append(IntentProblem("order_type", f"must be an OrderType (got {intent.order_type!r})"))
    qty = intent.qty
    if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
        out.append(IntentProblem("qty", f"must be a positive whole number of shares as int (got {qty!r})"))
    entry_problems = _price_problems("entry", intent.entry, required=True)
    stop_problems = _price_problems("stop", intent.stop, required=False)
    target_problems = _price_problems("take_profit", intent.take_profit, required=False)
    out += entry_problems + stop_problems + target_problems
    if side_ok and not entry_problems:
        entry, sign = intent.entry, intent.side.sign
        # For a buy the stop sits below the entry and the target above; for a sell the reverse.
        if intent.stop is not None and not stop_problems and not (sign * (entry - intent.stop) > 0):
            where = "below" if sign > 0 else "above"
            out.append(IntentProblem("stop", f"{intent.stop!r} must be {where} the entry {entry!r} for a {intent.side.value}"))
        if intent.take_profit is not None and not target_problems and not (sign * (intent.take_profit - entry) > 0):
            where = "above" if sign > 0 else "below"
            out.append(
                IntentProblem("take_profit", f"{intent.take_profit!r} must be {where} the entry {entry!r} for a {intent.side.value}")
            )
    if not isinstance(intent.strategy, str) or not intent.strategy:
        out.append(IntentProblem("strategy", "must name the strategy"))
    elif strategy is not None and intent.strategy != strategy:
        out.append(IntentProblem("strategy", f"{intent.strategy!r} is not the running strategy {strategy!r}"))
    if not isinstance(intent.strategy_version, str) or not intent.strategy_version:
        out.append(IntentProblem("strategy_version", "must record the strategy version"))
    elif ctx.strategy_version and intent.strategy_version != ctx.strategy_version:
        out.append(
            IntentProblem("strategy_version", f"{intent.strategy_version!r} is not the running version {ctx.strategy_version!r}")
        )
    if intent.trading_date != ctx.trading_date:
        out.append(IntentProblem("trading_date", f"{intent.trading_date!r} is not the run's trading date {ctx.trading_date!r}"))
    return out


def validate_intents(
    intents: Sequence[Any], ctx: StrategyContext, *, strategy: str | None = None
) -> tuple[list[OrderIntent], list[RejectedIntent]]:
    """Split `intents` into well-formed ones and rejections, each rejection with every problem found.

    Checks: the object is an `OrderIntent`; `client_order_id` 1-64 of ``[A-Za-z0-9._:-]`` and
    unique in the batch (every intent sharing an id is rejected: which one was meant is
    unknowable); `symbol` has bars in `ctx`; `side` a `Side`; `order_type` an `OrderType`;
    `qty` a positive `int`; `entry` (required), `stop`, `take_profit` (optional) finite, above
    0 and on the tick grid; stop below / target above the entry for a buy, the reverse for a
    sell; `strategy` set (and equal to `strategy` when given); `strategy_version` set (and equal
    to `ctx.strategy_version` when that is set); `trading_date` equal to the run's. Each
    rejection is logged at WARNING. Order is preserved in both lists.
    """
    problems = [_problems(intent, ctx, strategy) for intent in intents]
    ids = Counter(i.client_order_id for i in intents if isinstance(i, OrderIntent) and isinstance(i.client_order_id, str))
    good: list[OrderIntent] = []
    rejected: list[RejectedIntent] = []
    for intent, found in zip(intents, problems):
        coid = intent.client_order_id if isinstance(intent, OrderIntent) else None
        if isinstance(coid, str) and ids[coid] > 1:
            found.append(IntentProblem("client_order_id", f"{coid!r} appears {ids[coid]} times in this batch"))
        if found:
            rejection = RejectedIntent(intent, tuple(found))
            logger.warning("rejected %s", rejection.describe())
            rejected.append(rejection)
        else:
            good.append(intent)
    return good, rejected
