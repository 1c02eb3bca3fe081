"""execution domain package (no Dagster import): brokers, the order ledger, slippage.

Orders leave the system here, and only as an approved policy-gate decision
(`kobe_pipelines.risk`). `service.place_orders` is the one path: ledger (intent) -> gate (under
the decision lock) -> ledger (write-ahead) -> broker -> ledger; the same intent again resumes.
`PaperBroker` is the embedded default (it replays bars: `BarReplayBroker`); `AlpacaBroker`
(`kobe_pipelines.execution.alpaca`, imported on demand: it loads alpaca-py) the real one.
`corporate_actions` holds the rules that bring the book through splits, dividends and
delistings; `protection` keeps a live stop on every position.
"""

from kobe_pipelines.execution.broker import (
    Account,
    Broker,
    Fill,
    LegRecord,
    LegRole,
    OrderAck,
    OrderClass,
    OrderRecord,
    OrderSpec,
    OrderStatus,
    protective_stop,
)
from kobe_pipelines.execution.errors import (
    AuthenticationError,
    BrokerError,
    BrokerUnavailableError,
    DuplicateClientOrderIdError,
    InsufficientBuyingPowerError,
    InvalidOrderError,
    MarketClosedError,
    OrderNotFoundError,
    OrderStatusUnknownError,
    RateLimitedError,
    UnknownSymbolError,
)
from kobe_pipelines.execution.ledger import DriftReport, OrderLedger
from kobe_pipelines.execution.paper import AdvanceResult, PaperBroker
from kobe_pipelines.execution.service import (
    Execution,
    book_for_decisions,
    book_from_broker,
    place_order,
    place_orders,
    settle,
)
from kobe_pipelines.execution.slippage import SlippageRecord, SlippageSummary, SlippageTracker, measure

__all__ = [
    "Account", "AdvanceResult", "AuthenticationError", "Broker", "BrokerError", "BrokerUnavailableError", "DriftReport",
    "DuplicateClientOrderIdError",     "Execution", "Fill", "InsufficientBuyingPowerError", "InvalidOrderError", "LegRecord", "LegRole", "MarketClosedError",
    "OrderAck", "OrderClass", "OrderLedger", "OrderNotFoundError", "OrderRecord", "OrderSpec", "OrderStatus",
    "OrderStatusUnknownError", "PaperBroker", "RateLimitedError", "SlippageRecord", "SlippageSummary", "SlippageTracker",
    "UnknownSymbolError", "book_for_decisions", "book_from_broker", "measure", "place_order", "place_orders",
    "protective_stop", "settle",
]
