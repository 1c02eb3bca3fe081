"""Trading assets: the trading run (orders), slippage and the equity curve.

pandas and the trading modules load inside the assets, not when the definitions load."""

import dagster as dg

from kobe_pipelines.defs.env_resources import AlertsResource, BrokerResource, RiskResource, StrategyResource
from kobe_pipelines.defs.plots import plot_markdown
from kobe_pipelines.defs.resources import LakeResource

GROUP = "trading"
HISTORY_DAYS = 120  # calendar days of adjusted bars handed to the strategy (ATR and friends)
RAW_LOOKBACK_DAYS = 30  # calendar days of raw bars read before the signal date (each held symbol's last bar)
ACTION_SESSION_GAP_DAYS = 14  # more than any XNYS closure (weekend and holidays) between a date and its session


def _md(frame) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.to_markdown(index=False) if not frame.empty else "_none_")


def _dated_near(frame, column: str, start):
    """The rows of a version's action table that can take effect on `start` or later (an action
    dated on a weekend or holiday takes effect at the next session, a few days later at most): the
    whole history's actions need not be read row by row."""
    import pandas as pd

    if frame is None:
        return None
    return frame.loc[pd.to_datetime(frame[column]) >= start - pd.Timedelta(days=ACTION_SESSION_GAP_DAYS)]


@dg.asset(group_name=GROUP, kinds={"python"})
def trade_orders(
    signals, lake: LakeResource, broker: BrokerResource, risk: RiskResource,
    strategy: StrategyResource, alerts: AlertsResource,
) -> dg.MaterializeResult:
    """One trading run: the book brought through the sessions since the last run (fills,
    corporate actions, delistings), every position's stop checked, then the strategy's intents
    through the policy gate to the broker, all recorded in the order ledger. Everything is read
    from the lake version the signals were scored on. Rejections, fills and book events alert."""
    import pandas as pd

    from kobe_pipelines.alerts import Alert, AlertKind
    from kobe_pipelines.execution.broker import BarReplayBroker
    from kobe_pipelines.execution.corporate_actions import actions_from_tables
    from kobe_pipelines.trading.cycle import run_trading_cycle
    from kobe_pipelines.trading.lineage import signal_lineage

    if not broker.state().is_dir():
        # fail closed: a mistyped KOBE_STATE_DIR must not look like a fresh, un-halted account
        raise dg.Failure(f"state folder {broker.state()} does not exist; create it (or fix KOBE_STATE_DIR) before trading")
    store = lake.open()
    lineage = signal_lineage(signals)
    version = lineage.lake_version if lineage is not None else store.current_version_id()
    signal_date = pd.Timestamp(signals["date"].max())
    bars = store.read_bars(version_id=version, view="total", start=signal_date - pd.Timedelta(days=HISTORY_DAYS),
                           end=signal_date)
    universe = sorted(bars["symbol"].unique())
    venue = broker.build(universe=universe)
    seen = venue.last_session if isinstance(venue, BarReplayBroker) else None
    lookback = signal_date - pd.Timedelta(days=RAW_LOOKBACK_DAYS)  # a held symbol's last bar, for stale marks
    raw_start = min(pd.Timestamp(seen) + pd.Timedelta(days=1), lookback) if seen else lookback
    raw = store.read_bars(version_id=version, view="raw", start=raw_start, end=signal_date)
    actions = actions_from_tables(_dated_near(store.derived_table("splits", version), "execution_date", raw_start),
                                  _dated_near(store.derived_table("dividends", version), "ex_dividend_date", raw_start),
                                  start=str(raw_start.date()), end=str(signal_date.date()))
    alerter = alerts.alerter()
    registry = strategy.registry(
        alert=lambda subject, body: alerter.send(Alert(kind=AlertKind.STRATEGY_RELOAD_FAILED, subject=subject, body=body))
    )
    with risk.gate(universe=universe) as gate:
        result = run_trading_cycle(
            signals=signals, bars=bars, raw_bars=raw, broker=venue, gate=gate, ledger=broker.ledger(),
            slippage=broker.slippage(), registry=registry, strategy_name=strategy.strategy,
            drawdown=risk.drawdown_monitor(alert=lambda s, b: alerter.send(Alert(kind=AlertKind.HALT, subject=s, body=b,
                                                                                 severity="critical"))),
            budget=strategy.budget(), send_alert=alerter.send, actions=actions,
            delisted_after=broker.delisted_after_sessions,
        )
    if version and result.sent:  # an order's lineage stays recomputable (`kobe orders --lineage`)
        store.pin(version, f"orders of {result.trading_date}")
    registry.close()
    flushed = alerter.flush()
    orders = result.orders_frame()
    fills = pd.DataFrame([{"session": f.session, "symbol": f.symbol, "side": f.side.value, "qty": f.qty,
                           "price": f.price, "expected": f.expected_price, "leg": f.leg.value} for f in result.fills])
    dd = result.drawdown
    return dg.MaterializeResult(
        metadata={
            "trading_date": result.trading_date,
            "strategy": result.strategy,
            "strategy_version": result.strategy_version,
            "intents": len(result.executions),
            "sent": len(result.sent),
            "rejected_by_gate": len(result.rejected),
            "malformed_intents": len(result.strategy_rejections),
            "fills": len(result.fills),
            "equity_usd": result.equity,
            "cash_usd": result.cash,
            "drawdown": float(dd.drawdown) if dd and dd.drawdown is not None else float("nan"),
            "halted": bool(dd.halted) if dd else False,
            "orders": _md(orders),
            "fills_table": _md(fills),
            "alerts_mailed": flushed.mails_sent,
            "ledger_drift": dg.MetadataValue.json(result.notes.get("drift", [])),
            "lake_version": version or "",
            "model_version": lineage.model_version if lineage is not None else "",
            "book_events": dg.MetadataValue.json([e.to_dict() for e in result.book_events]),
            "stale_marks": dg.MetadataValue.json(result.stale_marks),
            "stops_replaced": sum(1 for p in result.protection if p.placed is not None),
            "unprotected": sum(1 for p in result.protection if not p.ok),
        }
    )


@dg.asset(group_name=GROUP, deps=[trade_orders], kinds={"sqlite"})
def slippage_report(broker: BrokerResource) -> dg.MaterializeResult:
    """Slippage of every fill against its arrival price (the open for a fill at the open, else the order's
    limit or stop): bps and USD, positive = cost (side-aware)."""
    tracker = broker.slippage()
    records = tracker.records()
    overall = tracker.overall()
    meta = {
        "fills": overall.fills,
        "mean_bps": overall.mean_bps,
        "median_bps": overall.median_bps,
        "p95_bps": overall.p95_bps,
        "total_usd": overall.total_usd,
    }
    if not records.empty:
        meta["by_symbol"] = _md(tracker.by_symbol())
        meta["plot"] = plot_markdown(lambda ax: (ax.hist(records["slippage_bps"], bins=30), ax.set_xlabel("slippage, bps (cost > 0)")),
                                    "slippage per fill")
    return dg.MaterializeResult(metadata=meta)


@dg.asset(group_name=GROUP, deps=[trade_orders], kinds={"python"})
def equity_curve(risk: RiskResource) -> dg.MaterializeResult:
    """Account equity and its drawdown from the high-water mark, as the drawdown monitor recorded
    them (every trading run and every drawdown-sensor tick); the halt engages at the limit."""
    import pandas as pd

    from kobe_pipelines.risk.drawdown import read_equity_log

    frame = read_equity_log(risk.state())
    meta: dict = {"readings": len(frame)}
    if not frame.empty:
        when = pd.to_datetime(frame["as_of"], format="mixed", utc=True)
        drawdown = pd.to_numeric(frame["drawdown"], errors="coerce").fillna(0.0)

        def draw(ax):
            ax.plot(when, frame["equity"], label="equity, USD")
            ax.set_ylabel("equity, USD")
            twin = ax.twinx()
            twin.fill_between(when, -100 * drawdown, 0, color="tab:red", alpha=0.3, step="post")
            twin.set_ylabel("drawdown, %")

        meta.update({
            "equity_usd": float(frame["equity"].iloc[-1]),
            "high_water_mark_usd": float(frame["high_water_mark"].dropna().iloc[-1]) if frame["high_water_mark"].notna().any() else float("nan"),
            "max_drawdown": float(drawdown.max()),
            "halted": bool(frame["halted"].iloc[-1]),
            "plot": plot_markdown(draw, "equity and drawdown"),
        })
    return dg.MaterializeResult(metadata=meta)


trading_assets = [trade_orders, slippage_report, equity_curve]
