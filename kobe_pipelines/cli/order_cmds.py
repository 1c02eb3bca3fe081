"""`kobe order bracket ...` (a manual order through the gate and the ledger) and `kobe orders`."""

from __future__ import annotations

import datetime as dt
import os
import sys
from zoneinfo import ZoneInfo

import click

from kobe_pipelines import paths
from kobe_pipelines.cli.errors import GuardedCommand
from kobe_pipelines.cli.params import PRICE, SHARES
from kobe_pipelines.cli.tables import wrap_text
from kobe_pipelines.errors import KobeError

state_option = click.option("--state", "state_path", type=click.Path(file_okay=False), default=None,
                            help="State folder (default: $KOBE_STATE_DIR or ./state).")
broker_option = click.option("--broker", "broker_name", type=click.Choice(["paper", "alpaca"]), default="paper",
                             show_default=True, help="paper: the embedded paper broker; alpaca: ALPACA_* settings.")


def _fail(message: object, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _broker(name: str, state):
    if name == "alpaca":
        from kobe_pipelines.execution.alpaca import AlpacaBroker

        return AlpacaBroker()
    from kobe_pipelines.execution.paper import PaperBroker

    return PaperBroker(state)


def _lake_close(symbol: str) -> float | None:
    """The latest raw close of `symbol` in the current lake version, or None."""
    from kobe_pipelines.lake import Lake
    from kobe_pipelines.lake.errors import LakeError

    try:
        lake = Lake()
        if lake.current_version_id() is None:
            return None
        bars = lake.read_bars(view="raw", symbols=[symbol])
    except (LakeError, OSError):
        return None
    return float(bars["close"].iloc[-1]) if not bars.empty else None


def _session(trading_date: str | None, broker_name: str, replay: bool, now: dt.datetime | None = None) -> str:
    """The session the order is for: by default the first whose close has not passed (today's
    until the close, then the next one). A past date is refused for a live broker, and allowed for
    the paper broker only with --replay."""
    from kobe_pipelines.market_calendar import EXCHANGE_TZ, next_session_to_trade

    if trading_date is None:
        return next_session_to_trade(now).date().isoformat()
    today = (now or dt.datetime.now(dt.timezone.utc)).astimezone(ZoneInfo(EXCHANGE_TZ)).date()
    try:
        day = dt.date.fromisoformat(trading_date)
    except ValueError:
        _fail(f"--trading-date {trading_date!r} is not a date YYYY-MM-DD")
    if day < today:
        if broker_name != "paper":
            _fail(f"--trading-date {day} is before today ({today}, America/New_York): a live broker cannot trade a "
                  "past session")
        if not replay:
            _fail(f"--trading-date {day} is before today ({today}, America/New_York); pass --replay to let the paper "
                  "broker fill it against that session's bars")
    return day.isoformat()


@click.group()
def order() -> None:
    """Manual orders, through the same policy gate and order ledger as the trading loop."""


class OrderCommand(GuardedCommand):
    """Bad arguments exit 1 (refused: nothing was sent); an error the command does not handle
    exits 2, like a lost broker answer: the order may have been sent before it."""

    usage_exit_code = 1
    failure_exit_code = 2
    failure_hint = "the order may have reached the broker: check with `kobe orders --reconcile`"


@order.command(cls=OrderCommand)
@click.option("--symbol", required=True, help="Ticker, e.g. AAPL.")
@click.option("--side", type=click.Choice(["buy", "sell"]), required=True, help="buy: long entry; sell: short entry.")
@click.option("--qty", type=SHARES, required=True, help="Whole shares (> 0).")
@click.option("--entry", type=PRICE, required=True, help="Limit price of the entry, USD.")
@click.option("--stop", type=PRICE, required=True, help="Stop-loss trigger, USD (below the entry for a buy).")
@click.option("--take-profit", type=PRICE, required=True, help="Take-profit limit, USD (above the entry for a buy).")
@broker_option
@click.option("--client-order-id", default=None, help="Default: derived from the order (the same order, the same id).")
@click.option("--trading-date", default=None,
              help="Session YYYY-MM-DD (default: today's until its close, then the next session).")
@click.option("--replay", is_flag=True, help="Allow a past --trading-date (paper broker only: it fills against that "
                                             "session's bars when they are replayed).")
@click.option("--retry", is_flag=True, help="Send again an order the broker refused (the gate decides it again).")
@click.option("--last-price", type=PRICE, default=None,
              help="Last price for the gate's collar and heat checks (default: the broker's mark or the lake's close).")
@state_option
def bracket(symbol: str, side: str, qty: int, entry: float, stop: float, take_profit: float, broker_name: str,
            client_order_id: str | None, trading_date: str | None, replay: bool, retry: bool, last_price: float | None,
            state_path: str | None) -> None:
    """Send one bracket order: gate -> ledger -> broker. Prints every check and the broker's answer.

    Prices are put on the tick grid conservatively first (buy entry down, stop towards the
    entry, take-profit towards the entry). The same command again never sends a second order:
    it resumes an order that was approved but never reached the broker (a crash), and says so
    when the broker already has it. Exit code 0: sent (or already at the broker); 1: rejected
    or refused (bad arguments too); 2: the broker's answer was lost, or an unexpected error
    (see `kobe orders --reconcile`).
    """
    from kobe_pipelines.execution.errors import OrderStatusUnknownError
    from kobe_pipelines.execution.ledger import OrderLedger
    from kobe_pipelines.execution.service import book_for_decisions, place_order
    from kobe_pipelines.orders import OrderIntent, order_details, round_bracket
    from kobe_pipelines.orders import client_order_id as make_id
    from kobe_pipelines.risk.gate import PolicyGate
    from kobe_pipelines.risk.limits import RiskLimits

    state = paths.state_dir(state_path)
    if not state.is_dir():  # the gate counts a missing state folder as halted; do not create one here
        _fail(f"state folder {state} does not exist (create it, or check --state / KOBE_STATE_DIR)")
    if not os.access(state, os.W_OK | os.X_OK):  # read-only: refused before anything is decided or sent
        _fail(f"state folder {state} is not writable by this user (the ledger, the audit log and the paper book "
              "are written there): check its owner and mode, or --state / KOBE_STATE_DIR")
    session = _session(trading_date, broker_name, replay)
    try:
        e, s, t = round_bracket(side, entry, stop, take_profit, record=symbol, check_sides=False)  # the gate judges sides
        for name, before, after in (("entry", entry, e), ("stop", stop, s), ("take-profit", take_profit, t)):
            if float(after) != before:
                click.echo(f"{name} {before} rounded to the tick: {after}")
        coid = client_order_id or make_id("manual", symbol, session, side, order_details(qty, e, s, t, record=symbol))
        broker = _broker(broker_name, state)
        ledger = OrderLedger(state)
        drift = ledger.reconcile(broker)
        if not drift.ok:
            for line in drift.lines():
                click.echo(f"drift: {line}", err=True)
        marks = dict(broker.marks())
        last = last_price if last_price is not None else marks.get(symbol) or _lake_close(symbol)
        if last is None:
            _fail(f"no last price for {symbol}: pass --last-price (the gate's collar and heat checks need one)")
        marks[symbol] = last
        intent = OrderIntent(coid, symbol, side, qty, float(e), float(s), float(t), strategy="manual", trading_date=session)
        gate = PolicyGate(RiskLimits.load(), state)
        try:
            result = place_order(intent, lambda: book_for_decisions(broker, marks, ledger), gate, broker, ledger,
                                 retry=retry)
        finally:
            gate.close()
    except KobeError as exc:
        _fail(exc)
    click.echo(f"order {coid}:")
    click.echo(f"  {side} {qty} {symbol} @ {e} stop {s} take-profit {t} for {session} ({broker_name})")
    decision = result.decision
    if decision is not None:
        click.echo(f"decision {decision.decision_id}: {'APPROVED' if decision.approved else 'REJECTED'}")
        for check in decision.checks:
            click.echo(wrap_text(f"  {'PASS' if check.passed else 'FAIL'}  {check.name:<15} {check.reason}", 24))
    if result.resumed:
        click.echo(f"resumed: {result.resumed}")
    if decision is not None and not decision.approved:
        if any(c.name == "duplicate_id" for c in decision.failures) and ledger.order_state(coid) == "refused":
            click.echo("the broker refused this order earlier: pass --retry to send it again")
        sys.exit(1)
    if result.error is not None:
        click.echo(f"broker: {type(result.error).__name__}: {result.error}")
        sys.exit(2 if isinstance(result.error, OrderStatusUnknownError) else 1)
    ack = result.ack
    note = "" if ack.created else " (already existed: not sent again)"
    note += " (found by client order id after a lost answer)" if ack.reconciled and ack.created else ""
    click.echo(f"broker: {ack.broker} order {ack.broker_order_id} {ack.status.value} ({ack.order_class.value}){note}")


@click.command()
@click.option("--events", "show_events", is_flag=True, help="Every ledger event instead of one row per intent.")
@click.option("--order", "client_order_id", default=None, help="Only this client order id (implies --events).")
@click.option("--sent", "sent_only", is_flag=True, help="One row per order that reached a broker, with fills and P&L.")
@click.option("--lineage", "lineage_of", default=None, metavar="ID",
              help="The chain behind one order (strategy, model, lake version, signals, decision, broker), with its "
                   "features and score recomputed from the pinned lake version and the registered model.")
@click.option("--lake", "lake_path", type=click.Path(file_okay=False), default=None,
              help="Lake folder for --lineage (default: $KOBE_LAKE_DIR or ./data_lake).")
@click.option("--tracking-uri", default=None, help="MLflow store for --lineage (default: $MLFLOW_TRACKING_URI or "
                                                   "sqlite:///<state>/mlflow/mlflow.db).")
@click.option("--reconcile", "reconcile_with", type=click.Choice(["paper", "alpaca"]), default=None,
              help="Also compare the ledger with this broker's open orders and positions.")
@click.option("--format", "output", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="table: for people, within 100 columns; csv, json: every column, for scripts.")
@state_option
def orders(show_events: bool, client_order_id: str | None, sent_only: bool, lineage_of: str | None, lake_path: str | None,
           tracking_uri: str | None, reconcile_with: str | None, output: str, state_path: str | None) -> None:
    """Every intent in the order ledger (state/order_ledger.sqlite), also the ones never sent: its
    entry, stop, take-profit, outcome (working, open, stopped out, took profit, expired, rejected,
    ...) and why, fill prices, realized P&L and slippage against the arrival price (bps,
    positive = cost)."""
    from kobe_pipelines.cli.order_tables import render_events, render_orders
    from kobe_pipelines.execution.ledger import OrderLedger

    state = paths.state_dir(state_path)
    try:
        ledger = OrderLedger(state)
        if lineage_of:
            _print_lineage(ledger, lineage_of, state, lake_path, tracking_uri)
            return
        if show_events or client_order_id:
            frame = ledger.events(client_order_id)
            text = render_events(frame if output != "table" else frame.drop(columns=["detail"]), output)
        elif sent_only:
            frame = ledger.orders()
            text = render_orders(frame, output)
        else:
            frame = ledger.intents(_audit_approvals(state))
            text = render_orders(frame, output)
        if frame.empty and output == "table":
            click.echo("the order ledger is empty" if client_order_id is None else f"no events for {client_order_id}")
        else:
            click.echo(text)
        if reconcile_with:
            report = ledger.reconcile(_broker(reconcile_with, state))
            for line in report.lines():
                click.echo(("" if report.ok else "drift: ") + line)
            if not report.ok:
                sys.exit(1)
    except KobeError as exc:
        _fail(exc)


def _audit_approvals(state) -> dict[str, str]:
    """Client order id -> decision id of every approval in the audit log."""
    from kobe_pipelines.risk.audit import audit_path
    from kobe_pipelines.risk.jsonl import iter_records

    out = {}
    for record in iter_records(audit_path(state)):
        intent = record.get("intent") or {}
        if record.get("approved") is True and isinstance(intent.get("client_order_id"), str):
            out[intent["client_order_id"]] = str(record.get("decision_id"))
    return out


def _print_lineage(ledger, client_order_id: str, state, lake_path: str | None, tracking_uri: str | None) -> None:
    from kobe_pipelines.trading.lineage import explain_order

    report = explain_order(ledger, client_order_id, lake_dir=lake_path, tracking_uri=tracking_uri, state_dir=state)
    for label, text in report.chain:
        click.echo(wrap_text(f"{label:<10} {text}", 11))
    for line in report.recomputed:
        click.echo(wrap_text(line, 2))
    if not report.ok:
        sys.exit(1)
