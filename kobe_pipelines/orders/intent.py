"""Order intents and the words every order is written in: side, order type, lineage.

Neutral ground: strategies write intents, the policy gate (`kobe_pipelines.risk`) judges them,
brokers (`kobe_pipelines.execution`) send them; none of those packages defines these words.

Conventions: prices are USD per share; quantities are whole shares, always positive on an
intent (the side carries the direction); a position's quantity is signed elsewhere (+ long,
- short). `trading_date` is the XNYS session (YYYY-MM-DD, America/New_York) the order is for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> "Side":
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(str, Enum):
    """`limit`: the entry is a limit price; `market`: the entry is the expected price (nothing is
    sent as a price); `stop`: a stop order whose trigger is the entry price (a protective stop,
    placed on its own when a bracket's stop leg is missing)."""

    LIMIT = "limit"
    MARKET = "market"
    STOP = "stop"


@dataclass(frozen=True)
class SignalLineage:
    """Where an order's signal came from, so that the order can be traced and its score recomputed.

    `model`/`model_version`: the registered model and its registry version that scored the
    signals ("" when no model made the signal); `lake_version`/`lake_hash`: the lake version id
    and content hash the signals were scored on; `signals_hash`: sha256 of the scores table;
    `signal_date`: the session of the scores; `score`: the order's symbol's score (None when the
    symbol was not scored, e.g. an exit of a symbol that lost its score)."""

    model: str = ""
    model_version: str = ""
    lake_version: str = ""
    lake_hash: str = ""
    signals_hash: str = ""
    signal_date: str = ""
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "SignalLineage | None":
        if not values:
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def for_score(self, score: float | None) -> "SignalLineage":
        return dataclasses.replace(self, score=score)


@dataclass(frozen=True)
class OrderIntent:
    """What a strategy (or a person) wants to trade. Not yet checked by anyone.

    `entry` is the limit price of the entry leg (the expected price for a market order, the
    trigger for a stop order). `stop` and `take_profit` are the bracket legs; either may be None
    for a simple order. Fields are typed loosely on purpose: the gate validates them and rejects
    bad values with a reason naming the field, instead of a constructor raising before anything
    is logged (`kobe_pipelines.orders.validation`).
    """

    client_order_id: str
    symbol: str
    side: Any  # Side, or a raw value the gate will reject
    qty: Any  # positive whole shares
    entry: Any  # USD per share
    stop: Any = None
    take_profit: Any = None
    order_type: Any = OrderType.LIMIT
    strategy: str = "manual"
    strategy_version: str = ""
    trading_date: str = ""  # YYYY-MM-DD, the exchange session the order is for
    lineage: Any = None  # SignalLineage, or None for an order no signal made

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copy dominates the gate's cost per decision, and every
        # field but the lineage is a flat value.
        out = {name: getattr(self, name) for name in INTENT_FIELD_NAMES}
        for key in ("side", "order_type"):
            value = out[key]
            out[key] = value.value if isinstance(value, Enum) else value
        lineage = out["lineage"]
        if isinstance(lineage, SignalLineage):
            out["lineage"] = lineage.to_dict()
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "OrderIntent":
        """The intent `to_dict` wrote (enums and lineage restored)."""
        data = {k: values.get(k) for k in INTENT_FIELD_NAMES if k in values}
        if isinstance(data.get("lineage"), dict):
            data["lineage"] = SignalLineage.from_dict(data["lineage"])
        for key, kind in (("side", Side), ("order_type", OrderType)):
            try:
                data[key] = kind(data[key])
            except (KeyError, ValueError):
                pass
        return cls(**data)


INTENT_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(OrderIntent))
