"""Phase 5 live checks: alerts, strategy hot-reload, and the whole loop end to end."""

from __future__ import annotations

from pathlib import Path

from kobe_pipelines.verify.base import VerifyCheck, run_check

HISTORY = ("2022-01-03", "2024-06-14")
DAYS = ("2024-06-17", "2024-06-18")
SIM_END = "2024-06-24"


def run_checks(workdir: Path) -> list[VerifyCheck]:
    state = workdir / "state"
    state.mkdir(parents=True, exist_ok=True)
    return [
        run_check(5, "alerts: logged and grouped without SMTP", lambda: _alerts(state)),
        run_check(5, "hot-reload: a broken edit keeps the last good version", lambda: _hot_reload(workdir)),
        run_check(5, "end to end: signals -> sensor -> gate -> paper broker -> fills", lambda: _end_to_end(workdir)),
    ]


def _alerts(state: Path) -> str:
    from kobe_pipelines.alerts import Alert, AlertKind, build_alerter, compose_mail
    from kobe_pipelines.alerts.sinks import read_alert_log

    alerter = build_alerter(state_dir=state, environ={})
    alerts = [Alert(kind=AlertKind.ORDER_REJECTED, subject=f"order K{i:04d} rejected", body="heat cap") for i in range(5)]
    for alert in alerts:
        if not alerter.send(alert):
            raise AssertionError("send() reported a failure")
    logged = read_alert_log(state / "alerts.jsonl")
    if len(logged) != 5:
        raise AssertionError(f"{len(logged)} alerts in state/alerts.jsonl, expected 5")
    mail = compose_mail(alerts)
    if "5 x order_rejected" not in mail.subject:
        raise AssertionError(f"five alerts of one kind did not group into one mail: {mail.subject!r}")
    return f"5 alerts logged; grouped as one mail: {mail.subject}"


def _hot_reload(workdir: Path) -> str:
    import pandas as pd

    from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
    from kobe_pipelines.risk.types import Book
    from kobe_pipelines.strategies import StrategyContext, StrategyRegistry

    folder = workdir / "strategies"
    folder.mkdir(exist_ok=True)
    sim = SimulatedProvider(SimConfig(seed=3, n_symbols=6, start="2024-03-01", end="2024-06-14"))
    bars = sim.daily_bars("2024-03-01", "2024-06-14")
    last = bars["date"].max()
    signals = pd.DataFrame({"symbol": sorted(bars["symbol"].unique()), "date": last})
    signals["score"] = range(len(signals))
    ctx = StrategyContext(signals=signals, bars=bars, book=Book(100_000.0, 100_000.0, 100_000.0), trading_date="2024-06-17")
    (folder / "mine.py").write_text("from kobe_pipelines.strategies import RankedLong\nSTRATEGY = RankedLong(name='mine')\n")
    alerts: list[str] = []
    registry = StrategyRegistry(folder, alert=lambda subject, body: alerts.append(subject), keep_dir=workdir / "state" / "strategies")
    _, good = registry.get("mine", ctx)
    (folder / "mine.py").write_text("STRATEGY = (\n")
    _, served = registry.get("mine", ctx)
    registry.close()
    if served != good or not alerts:
        raise AssertionError(f"served {served} after a broken edit (good {good}); alerts: {alerts}")
    return f"kept version {good}; alert: {alerts[0][:80]}"


def _end_to_end(workdir: Path) -> str:
    import dagster as dg

    from kobe_pipelines.defs.driver import LoopDriver, training_config
    from kobe_pipelines.defs.env_resources import (
        AlertsResource, BrokerResource, MlflowResource, RiskResource, StrategyResource,
    )
    from kobe_pipelines.defs.backtest.resources import BacktestResource
    from kobe_pipelines.defs.resources import LakeResource, MarketDataResource
    from kobe_pipelines.execution.ledger import OrderLedger

    state = str(workdir / "state")
    resources = {
        "lake": LakeResource(lake_dir=str(workdir / "data_lake")),
        "market_data": MarketDataResource(sim_symbols=10, history_start=HISTORY[0], sim_end=SIM_END),
        "alerts": AlertsResource(state_dir=state),
        "risk": RiskResource(state_dir=state),
        "broker": BrokerResource(state_dir=state),
        "mlflow": MlflowResource(state_dir=state),
        "strategy": StrategyResource(state_dir=state),
        "backtest": BacktestResource(backtest_dir=str(workdir / "backtests")),
    }
    driver = LoopDriver(resources, dg.DagsterInstance.ephemeral())
    driver.freeze(*HISTORY, with_signals=False)
    driver.train(training_config(max_epochs=2, n_folds=1))
    keys = []
    for day in DAYS:
        request, _ = driver.tick_and_trade()
        keys.append(request.run_key if request else "none")
        driver.freeze(day, day)
    request, _ = driver.tick_and_trade()
    again, rerun = driver.tick_and_trade()
    events = OrderLedger(state).events()
    submitted, fills = int((events["event"] == "submitted").sum()), int((events["event"] == "fill").sum())
    if not submitted or not fills:
        raise AssertionError(f"{submitted} orders submitted, {fills} fills")
    if rerun is not None:
        raise AssertionError("a second sensor tick started a second trading run")
    return f"{len(keys) + 1} trading runs, {submitted} orders sent, {fills} fills; a repeated tick started nothing"
