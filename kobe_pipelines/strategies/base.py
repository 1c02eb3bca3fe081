"""The strategy interface and the intent validator.

A strategy turns a `StrategyContext` (signals, bars, book, trading date, risk budget) into
`OrderIntent`s. Nothing it returns is trusted: `validate_intents` rejects malformed intents
with a reason naming the field before anything reaches the policy gate, and the gate then
judges the rest against the account. The field rules are the order vocabulary's
(`kobe_pipelines.orders.validation`, strict); the run's own rules (symbol with bars, strategy,
version, trading date, unique ids) are added here.

Conventions: prices USD per share on the tick grid (`kobe_pipelines.orders.ticks`); `qty` whole
shares, always positive (the side carries the direction).
"""

from __future__ import annotations

import abc
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kobe_pipelines.orders import OrderIntent, OrderType, Side, client_order_id
from kobe_pipelines.orders.validation import bracket_problems, parse_intent, tick_problems
from kobe_pipelines.strategies.context import RiskBudget, StrategyContext

__all__ = [
    "IntentProblem",
    "RejectedIntent",
    "RiskBudget",
    "Strategy",
    "StrategyContext",
    "validate_intents",
]

logger = logging.getLogger(__name__)


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
        """An intent carrying this strategy's name and version, the run's signal lineage and a
        deterministic client order id: one order per (strategy, symbol, session, side), so an
        edited strategy re-run for the same session meets its earlier order."""
        return OrderIntent(
            client_order_id=client_order_id(self.name, symbol, ctx.trading_date, side),
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
            lineage=ctx.lineage_for(symbol),
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


def _problems(intent: Any, ctx: StrategyContext, strategy: str | None) -> list[IntentProblem]:
    parsed = parse_intent(intent, strict=True)
    found = {**parsed.problems, **tick_problems(parsed), **bracket_problems(parsed)}
    out = [IntentProblem(name, text.removeprefix(f"field '{name}' ")) for name, text in found.items()]
    if "intent" in found:
        return out
    if not isinstance(intent.symbol, str) or intent.symbol not in ctx.symbols:
        out = [p for p in out if p.field != "symbol"]
        out.append(IntentProblem("symbol", f"{intent.symbol!r} has no bars in this run"))
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
    if ctx.lineage is not None and intent.lineage is not None and intent.lineage != ctx.lineage_for(intent.symbol):
        out.append(IntentProblem("lineage", "is not the run's signal lineage (leave it None: the run stamps its own)"))
    return out


def validate_intents(
    intents: Sequence[Any], ctx: StrategyContext, *, strategy: str | None = None
) -> tuple[list[OrderIntent], list[RejectedIntent]]:
    """Split `intents` into well-formed ones and rejections, each rejection with every problem found.

    Checks: the order vocabulary's field rules, strict (`orders.validation`: `client_order_id`
    1-48 of ``[A-Za-z0-9._:-]``; `side` a `Side`; `order_type` an `OrderType`; `qty` a positive
    `int`; `entry` (required), `stop`, `take_profit` (optional) finite, above 0 and on the tick
    grid; stop below / target above the entry for a buy, the reverse for a sell); the id unique
    in the batch (every intent sharing an id is rejected: which one was meant is unknowable);
    `symbol` has bars in `ctx`; `strategy` set (and equal to `strategy` when given); `strategy_version` set (and equal
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
