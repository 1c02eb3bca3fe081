"""One trading run: fills since the last run, then signals -> intents -> gate -> broker -> ledger.

Plain domain code (no Dagster). The Dagster asset `trade_orders` calls `run_trading_cycle`.

Order of a run, for the session `trading_date` (the next XNYS session after the signals' date):
1. the paper broker replays the raw bars it has not seen (fills of earlier orders); every broker's
   fills are then settled into the ledger and the slippage tracker;
2. the drawdown monitor sees the account's equity (it may engage the kill switch);
3. the strategy (hot-reloaded) turns signals, bars and the book into intents;
4. each intent goes through the one path `execution.service.place_order` (gate, ledger, broker);
   the book the gate sees grows with every approved entry, so a batch cannot exceed the heat cap;
5. alerts: rejected intents and orders, fills, and the strategy's reload failures.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from kobe_pipelines.alerts import Alert, AlertKind, Severity
from kobe_pipelines.execution.broker import Broker, Fill, LegRole
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.service import Execution, book_from_broker, place_order, settle
from kobe_pipelines.execution.slippage import SlippageTracker
from kobe_pipelines.risk.drawdown import DrawdownMonitor, DrawdownStatus
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.types import Book, Position
from kobe_pipelines.orders import OrderIntent, Side
from kobe_pipelines.strategies import RiskBudget, StrategyContext, StrategyRegistry

log = logging.getLogger(__name__)
SendAlert = Callable[[Alert], object]


@dataclass(frozen=True)
class TradingRunResult:
    trading_date: str
    strategy: str
    strategy_version: str
    executions: tuple[Execution, ...]
    strategy_rejections: tuple[str, ...]
    fills: tuple[Fill, ...]
    equity: float
    cash: float
    drawdown: DrawdownStatus | None
    strategy_error: str | None = None
    notes: dict = field(default_factory=dict)

    @property
    def sent(self) -> tuple[Execution, ...]:
        return tuple(e for e in self.executions if e.sent)

    @property
    def rejected(self) -> tuple[Execution, ...]:
        return tuple(e for e in self.executions if not e.decision.approved)

    def orders_frame(self) -> pd.DataFrame:
        rows = []
        for e in self.executions:
            i = e.intent
            rows.append(
                {
                    "client_order_id": i.client_order_id, "symbol": i.symbol, "side": getattr(i.side, "value", i.side),
                    "qty": i.qty, "entry": i.entry, "stop": i.stop, "take_profit": i.take_profit,
                    "approved": e.decision.approved, "sent": e.sent,
                    "status": e.ack.status.value if e.ack else ("error" if e.error else "rejected"),
                    "reason": e.decision.reason if not e.decision.approved else (str(e.error) if e.error else ""),
                    "strategy_version": i.strategy_version,
                }
            )
        return pd.DataFrame(rows)


def next_trading_date(signal_date: dt.date | str) -> str:
    from kobe_pipelines import market_calendar

    return str(market_calendar.xnys().next_session(pd.Timestamp(signal_date)).date())


def run_trading_cycle(
    *,
    signals: pd.DataFrame,
    bars: pd.DataFrame,
    raw_bars: pd.DataFrame,
    broker: Broker,
    gate: PolicyGate,
    ledger: OrderLedger,
    slippage: SlippageTracker,
    registry: StrategyRegistry,
    strategy_name: str,
    drawdown: DrawdownMonitor,
    budget: RiskBudget | None = None,
    send_alert: SendAlert | None = None,
) -> TradingRunResult:
    """Run one trading cycle. `signals`: symbol, date, score for the latest session; `bars`:
    total-return adjusted history up to that session; `raw_bars`: the raw bars (what traded) of
    the sessions the paper broker may not have seen yet."""
    alert = send_alert or (lambda a: log.warning("alert: %s", a.subject))
    signal_date = pd.Timestamp(signals["date"].max()).date()
    trading_date = next_trading_date(signal_date)

    if hasattr(broker, "advance") and not raw_bars.empty:
        broker.advance(raw_bars.loc[raw_bars["date"] <= pd.Timestamp(signal_date)])
    fills = settle(broker, ledger, slippage)
    drift = ledger.reconcile(broker)  # the ledger against the broker's open orders and positions
    if not drift.ok:
        alert(Alert(kind=AlertKind.ORDER_REJECTED, subject="ledger and broker disagree", body="\n".join(drift.lines()),
                    severity=Severity.WARNING, key="ledger_drift"))
    account = broker.account()
    status = drawdown.update(account.equity, as_of=signal_date)

    closes = bars.loc[bars["date"] == bars["date"].max()].set_index("symbol")["close"]
    raw_closes = raw_bars.sort_values("date").groupby("symbol")["close"].last() if not raw_bars.empty else closes
    marks = {str(k): float(v) for k, v in raw_closes.items()}
    book = _with_open_orders(book_from_broker(broker, marks), broker)

    ctx = StrategyContext(signals=signals, bars=bars, book=book, trading_date=trading_date, budget=budget or RiskBudget())
    try:
        loaded, version = registry.get(strategy_name, ctx)
    except Exception as exc:  # unknown or never-loadable strategy: send nothing, say why
        alert(Alert(kind=AlertKind.STRATEGY_RELOAD_FAILED, subject=f"strategy {strategy_name} unavailable",
                    body=str(exc), severity=Severity.CRITICAL))
        return TradingRunResult(trading_date, strategy_name, "", (), (), tuple(fills), account.equity, account.cash,
                                status, strategy_error=str(exc), notes={"drift": drift.lines()})
    run = loaded.run(ctx.with_version(version))
    rejections = tuple(r.describe() for r in run.rejected)
    if rejections or run.error:
        alert(Alert(kind=AlertKind.ORDER_REJECTED, subject=f"{strategy_name} {version}: {len(rejections)} malformed intents",
                    body="\n".join(rejections + ((f"error: {run.error}",) if run.error else ()))))

    executions = []
    for intent in run.intents:
        execution = place_order(intent, book, gate, broker, ledger)
        executions.append(execution)
        if execution.decision.approved:
            book = _with_pending(book, intent)
        else:
            alert(Alert(kind=AlertKind.ORDER_REJECTED, subject=f"order {intent.symbol} rejected by the policy gate",
                        body=execution.decision.reason))
    if fills:
        alert(Alert(kind=AlertKind.FILLS_SUMMARY, severity=Severity.INFO,
                    subject=f"{len(fills)} fills up to {signal_date}",
                    body="\n".join(f"{f.session} {f.symbol} {f.side.value} {f.qty} @ {f.price} ({f.leg.value})" for f in fills)))
    account = broker.account()
    return TradingRunResult(trading_date, strategy_name, version, tuple(executions), rejections, tuple(fills),
                            account.equity, account.cash, status, strategy_error=run.error,
                            notes={"drift": drift.lines()})


def _with_pending(book: Book, intent: OrderIntent, spend: bool = True) -> Book:
    """The book as if the approved entry had filled: its risk counts against the next orders.
    `spend`: also take its notional from buying power (brokers already do for working orders)."""
    qty = int(intent.qty) * (1 if intent.side is Side.BUY else -1)
    held = book.positions.get(intent.symbol)
    positions = dict(book.positions)
    if held is None:
        positions[intent.symbol] = Position(intent.symbol, qty, float(intent.entry), intent.stop)
    else:
        positions[intent.symbol] = dataclasses.replace(held, qty=held.qty + qty)
    notional = abs(qty) * float(intent.entry) if spend else 0.0
    return dataclasses.replace(book, positions=positions, buying_power=book.buying_power - notional,
                               last_prices={**book.last_prices, intent.symbol: book.last_prices.get(intent.symbol, float(intent.entry))})


def _with_open_orders(book: Book, broker: Broker) -> Book:
    """Unfilled entries at the broker count as pending positions (their risk is real tomorrow)."""
    for order in broker.open_orders():
        entry = order.leg(LegRole.ENTRY) or order.entry
        if entry.filled_qty == 0 and entry.price is not None:
            stop = order.leg(LegRole.STOP_LOSS)
            pending = OrderIntent(order.client_order_id, order.symbol, order.side, order.qty, entry.price,
                                  stop.price if stop else None)
            book = _with_pending(book, pending, spend=False)  # the broker's buying power excludes them
    return book
