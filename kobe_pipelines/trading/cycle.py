"""One trading run: the book brought up to date, then signals -> intents -> gate -> broker -> ledger.

Plain domain code (no Dagster). The Dagster asset `trade_orders` calls `run_trading_cycle`; a
backtest can call it day by day with its own state folder (the paper broker keeps every session's
cost small: its state is parsed only when it changed, and the whole run reads it a few times).

Order of a run, for the session `trading_date` (the next XNYS session after the signals' date):
1. the book is brought through every session up to the signals' date. A broker that replays
   bars (`BarReplayBroker`, the paper broker) gets the raw bars and corporate actions it has not
   seen: each session's actions reach the book before its fills, and delistings are booked;
   for a live broker, the actions of the sessions it traded are recorded in the ledger by the
   same rules, and its day entries left unfilled after their session are cancelled. Fills and
   book events are settled into the ledger (and fills into the slippage tracker);
2. the ledger is reconciled with the broker (any disagreement, e.g. after a split, alerts);
3. the drawdown monitor sees the account's equity, with the stale marks flagged;
4. every open position is checked for a live stop at the book's price; a missing one is placed
   again (`execution.protection`; alert, critical when it cannot be);
5. the strategy (hot-reloaded) turns signals, bars and the book into intents, each carrying the
   signals' lineage;
6. the intents go through the one order path (`execution.service.place_orders`): decided under
   the decision lock against a book with every order not filled yet, exits cancelling their
   position's legs first;
7. alerts: rejected intents and orders, fills, delistings, and the strategy's reload failures.

A corporate action that cannot be applied stops the run with `CorporateActionError` naming it.
Delisting and stale marks (`execution.corporate_actions`): a held symbol without a bar for
`delisted_after` sessions is delisted; fewer sessions without a bar leave a stale mark, valued as
it is and flagged in the equity reading and the heat check, never blocking every entry.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import pandas as pd

from kobe_pipelines.alerts import Alert, AlertKind, Severity, alert_key
from kobe_pipelines.execution.broker import BarReplayBroker, Broker, Fill
from kobe_pipelines.execution.corporate_actions import DEFAULT_DELISTED_AFTER, BookEvent, CorporateAction
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.live_book import cancel_expired_entries, record_live_actions
from kobe_pipelines.execution.protection import ProtectionOutcome, check_protection
from kobe_pipelines.execution.service import Execution, book_for_decisions, place_orders, settle
from kobe_pipelines.execution.slippage import SlippageTracker
from kobe_pipelines.orders import SignalLineage
from kobe_pipelines.risk.drawdown import DrawdownMonitor, DrawdownStatus
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.strategies import RiskBudget, StrategyContext, StrategyRegistry
from kobe_pipelines.trading.lineage import signal_lineage

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
    book_events: tuple[BookEvent, ...] = ()
    stale_marks: dict = field(default_factory=dict)
    protection: tuple[ProtectionOutcome, ...] = ()
    lineage: SignalLineage | None = None

    @property
    def sent(self) -> tuple[Execution, ...]:
        return tuple(e for e in self.executions if e.sent)

    @property
    def rejected(self) -> tuple[Execution, ...]:
        return tuple(e for e in self.executions if not e.approved)

    def orders_frame(self) -> pd.DataFrame:
        rows = []
        for e in self.executions:
            i = e.intent
            rows.append(
                {
                    "client_order_id": i.client_order_id, "symbol": i.symbol, "side": getattr(i.side, "value", i.side),
                    "qty": i.qty, "entry": i.entry, "stop": i.stop, "take_profit": i.take_profit,
                    "approved": e.approved, "sent": e.sent,
                    "status": e.ack.status.value if e.ack else ("error" if e.error else "rejected"),
                    "reason": "" if e.approved and not e.error else e.reason,
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
    actions: Sequence[CorporateAction] = (),
    delisted_after: int = DEFAULT_DELISTED_AFTER,
) -> TradingRunResult:
    """Run one trading cycle. `signals`: symbol, date, score for the latest session (with its
    lineage columns, `trading.lineage`); `bars`: total-return adjusted history up to that
    session; `raw_bars`: the raw bars (what traded) of the sessions the broker may not have
    seen yet, and enough before them to know each held symbol's last bar; `actions`: the
    corporate actions of those sessions (from the same lake version)."""
    alert = send_alert or (lambda a: log.warning("alert: %s", a.subject))
    lineage = signal_lineage(signals)
    signal_date = pd.Timestamp(signals["date"].max()).date()
    trading_date = next_trading_date(signal_date)
    upto = raw_bars.loc[raw_bars["date"] <= pd.Timestamp(signal_date)] if not raw_bars.empty else raw_bars
    actions_due = [a for a in actions if a.session <= str(signal_date)]

    if isinstance(broker, BarReplayBroker):
        last = broker.last_session
        if not upto.empty:
            broker.advance(upto, [a for a in actions_due if last is None or a.session > last])
        events = ledger.record_book_events(broker.book_events(), broker.name)
        stale = broker.stale_marks()
        notes: dict = {}
    else:
        opens, closes_before = _open_and_close_before(upto)
        events = record_live_actions(ledger, broker.name, actions_due, opens, closes_before)
        stale, gone = _live_staleness(broker, upto, str(signal_date), delisted_after)
        cancelled, failed = cancel_expired_entries(broker, ledger, trading_date)
        notes = {"expired_entries_cancelled": cancelled}
        for symbol, last_bar in gone.items():
            alert(Alert(kind=AlertKind.ORDER_REJECTED, severity=Severity.CRITICAL, key=alert_key("delisted", symbol),
                        subject=f"{symbol} has had no bar since {last_bar}: delisted by the rule",
                        body=f"{symbol} is held at {broker.name} without a bar for {delisted_after} sessions or more. "
                             "The broker closes or converts a delisted position itself: check the account."))
        if failed:
            alert(Alert(kind=AlertKind.ORDER_REJECTED, severity=Severity.CRITICAL, key="expired_entries",
                        subject="unfilled day entries could not be cancelled", body="\n".join(failed)))
    fills = settle(broker, ledger, slippage)
    drift = ledger.reconcile(broker)  # the ledger against the broker's open orders and positions
    notes["drift"] = drift.lines()
    if not drift.ok:
        after = " after corporate actions" if any(e.kind == "split" for e in events) else ""
        alert(Alert(kind=AlertKind.ORDER_REJECTED, subject=f"ledger and broker disagree{after}",
                    body="\n".join(drift.lines()), severity=Severity.WARNING, key="ledger_drift"))
    _alert_book_events(events, alert)
    account = broker.account()
    status = drawdown.update(account.equity, as_of=signal_date, stale_marks=stale or None)

    marks = _latest_closes(upto)
    book = lambda: book_for_decisions(broker, marks, ledger, stale)  # noqa: E731 - read under the decision lock
    protection = tuple(check_protection(broker, ledger, gate, book, trading_date))
    _alert_protection(protection, alert)

    ctx = StrategyContext(signals=signals, bars=bars, book=book(), trading_date=trading_date, budget=budget or RiskBudget(),
                          lineage=lineage)
    base = dict(book_events=tuple(events), stale_marks=stale, protection=protection, lineage=lineage)
    try:
        loaded, version = registry.get(strategy_name, ctx)
    except Exception as exc:  # unknown or never-loadable strategy: send nothing, say why
        alert(Alert(kind=AlertKind.STRATEGY_RELOAD_FAILED, subject=f"strategy {strategy_name} unavailable",
                    body=str(exc), severity=Severity.CRITICAL))
        return TradingRunResult(trading_date, strategy_name, "", (), (), tuple(fills), account.equity, account.cash,
                                status, strategy_error=str(exc), notes=notes, **base)
    run = loaded.run(ctx.with_version(version))
    rejections = tuple(r.describe() for r in run.rejected)
    if rejections or run.error:
        alert(Alert(kind=AlertKind.ORDER_REJECTED, subject=f"{strategy_name} {version}: {len(rejections)} malformed intents",
                    body="\n".join(rejections + ((f"error: {run.error}",) if run.error else ()))))

    executions = place_orders(run.intents, gate, broker, ledger, book)
    for execution in executions:
        if not execution.approved or (execution.error is not None and not execution.sent):
            alert(Alert(kind=AlertKind.ORDER_REJECTED,
                        subject=f"order {execution.intent.symbol} {'rejected by the policy gate' if not execution.approved else 'refused by the broker'}",
                        body=execution.reason))
    if fills:
        alert(Alert(kind=AlertKind.FILLS_SUMMARY, severity=Severity.INFO,
                    subject=f"{len(fills)} fills up to {signal_date}",
                    body="\n".join(f"{f.session} {f.symbol} {f.side.value} {f.qty} @ {f.price} ({f.leg.value})" for f in fills)))
    account = broker.account()
    return TradingRunResult(trading_date, strategy_name, version, tuple(executions), rejections, tuple(fills),
                            account.equity, account.cash, status, strategy_error=run.error, notes=notes, **base)


def _latest_closes(raw: pd.DataFrame) -> dict[str, float]:
    if raw.empty:
        return {}
    latest = raw.sort_values("date").groupby("symbol")["close"].last()
    return {str(k): float(v) for k, v in latest.items()}


def _open_and_close_before(raw: pd.DataFrame) -> tuple[dict, dict]:
    """(symbol, session) -> raw open, and -> the last raw close before that session."""
    if raw.empty:
        return {}, {}
    ordered = raw.sort_values(["symbol", "date"])
    days = ordered["date"].dt.strftime("%Y-%m-%d")
    opens = dict(zip(zip(ordered["symbol"].astype(str), days), ordered["open"].astype(float)))
    previous = ordered.groupby("symbol")["close"].shift(1)
    closes = {k: float(v) for k, v in zip(zip(ordered["symbol"].astype(str), days), previous) if pd.notna(v)}
    return opens, closes


def _live_staleness(broker: Broker, raw: pd.DataFrame, signal_date: str, delisted_after: int) -> tuple[dict, dict]:
    """Held symbols without a bar on the signal date: (stale: symbol -> last bar, gone: the ones
    without a bar for `delisted_after` sessions)."""
    from kobe_pipelines.market_calendar import xnys

    held = [s for s, p in broker.positions().items() if p.qty]
    last = raw.groupby("symbol")["date"].max() if not raw.empty else pd.Series(dtype="datetime64[ns]")
    stale, gone = {}, {}
    for symbol in held:
        seen = last.get(symbol)
        day = str(pd.Timestamp(seen).date()) if seen is not None and pd.notna(seen) else ""
        if day == signal_date:
            continue
        stale[symbol] = day or "unknown"
        missing = int(xnys().sessions_distance(day, signal_date)) - 1 if day else delisted_after
        if missing >= delisted_after:
            gone[symbol] = day or "before the bars read"
    return stale, gone


def _alert_book_events(events: list[BookEvent], alert: SendAlert) -> None:
    for event in events:
        if event.kind == "delisting":
            alert(Alert(kind=AlertKind.ORDER_REJECTED, severity=Severity.CRITICAL, key=alert_key("delisting", event.symbol),
                        subject=f"{event.symbol} delisted: position of {event.qty_before:+d} sh closed at {event.price}",
                        body=f"no bar since {event.detail.get('last_bar')}; booked as of {event.session} "
                             f"({event.cash} USD, realized P&L {event.detail.get('realized_pnl')} USD)"))
    applied = [e for e in events if e.kind in ("split", "dividend")]
    if applied:
        alert(Alert(kind=AlertKind.FILLS_SUMMARY, severity=Severity.INFO, key="corporate_actions",
                    subject=f"{len(applied)} corporate actions applied to the book",
                    body="\n".join(f"{e.session} {e.symbol} {e.kind}: {e.qty_before:+d} -> {e.qty_after:+d} sh, "
                                   f"cash {e.cash} USD" for e in applied)))


def _alert_protection(outcomes: tuple[ProtectionOutcome, ...], alert: SendAlert) -> None:
    for outcome in outcomes:
        p = outcome.protection
        if not outcome.ok:
            alert(Alert(kind=AlertKind.ORDER_REJECTED, severity=Severity.CRITICAL, key=alert_key("unprotected", p.symbol),
                        subject=f"{p.symbol}: {p.qty} sh without a stop; it could not be placed again",
                        body=f"bracket {p.order_id}, stop {p.stop}: {outcome.error}"))
        elif outcome.placed is not None:
            alert(Alert(kind=AlertKind.ORDER_REJECTED, severity=Severity.WARNING, key=alert_key("stop_replaced", p.symbol),
                        subject=f"{p.symbol}: missing stop placed again at {p.stop}",
                        body=f"bracket {p.order_id}: {p.qty - outcome.covered} sh were not covered by a live stop at the "
                             f"book's price; cancelled at another price: {', '.join(outcome.cancelled) or 'none'}"))
