"""Sensors: the trading run on new signals, the drawdown watch, and alert delivery."""

import datetime as dt

import dagster as dg

from kobe_pipelines.alerts import Alert, AlertKind, Severity
from kobe_pipelines.defs.env_resources import AlertsResource, BrokerResource, RiskResource
from kobe_pipelines.defs.trading.assets import trading_assets

trading_job = dg.define_asset_job(
    "trading_job", selection=dg.AssetSelection.assets(*trading_assets), tags={"kobe/job": "trading"},
    description="One trading run: signals -> strategy -> policy gate -> broker -> ledger, slippage and equity.",
)


def trading_run_key(trading_date: str, signals_hash: str) -> str:
    """One run per (trading date, signals): a repeated tick or a re-materialization of the same
    scores starts nothing new; Dagster never launches two runs with one run key."""
    return f"trade-{trading_date}-{signals_hash[:16]}"


@dg.asset_sensor(asset_key=dg.AssetKey("signals"), job=trading_job, minimum_interval_seconds=30)
def trading_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """Starts the trading run when a new `signals` materialization lands."""
    meta = asset_event.asset_materialization.metadata
    if "trading_date" not in meta or "signals_hash" not in meta:
        return dg.SkipReason("the signals materialization carries no trading date or hash")
    trading_date, digest = meta["trading_date"].value, meta["signals_hash"].value
    return dg.RunRequest(run_key=trading_run_key(trading_date, digest), tags={"kobe/trading_date": trading_date})


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def drawdown_sensor(context: dg.SensorEvaluationContext, broker: BrokerResource, risk: RiskResource, alerts: AlertsResource):
    """Reads the account's equity, moves the persisted high-water mark, and at the drawdown
    limit (15% by default) engages the kill switch and alerts. It never clears a halt."""
    alerter = alerts.alerter()
    monitor = risk.drawdown_monitor(
        alert=lambda subject, body: alerter.send(Alert(kind=AlertKind.HALT, subject=subject, body=body, severity=Severity.CRITICAL))
    )
    equity = broker.build().account().equity
    status = monitor.update(equity, as_of=dt.datetime.now(dt.timezone.utc))
    alerter.flush()
    drawdown = "n/a" if status.drawdown is None else f"{status.drawdown:.2%}"
    return dg.SkipReason(
        f"equity {status.equity:,.2f} USD, high-water mark {status.high_water_mark}, drawdown {drawdown}, "
        f"{'HALTED: ' + status.reason if status.halted else 'trading allowed'}"
    )


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertsResource):
    """A failed run (any job) raises a critical alert, grouped per job."""
    job = context.dagster_run.job_name
    alerter = alerts.alerter()
    alerter.send(Alert(kind=AlertKind.RUN_FAILED, subject=f"run of {job} failed",
                       body=f"run {context.dagster_run.run_id}: {context.failure_event.message}",
                       severity=Severity.CRITICAL, key=f"run_failed:{job}"))
    alerter.flush()


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def alerts_flush_sensor(context: dg.SensorEvaluationContext, alerts: AlertsResource):
    """Delivers queued alerts (grouped, retried with back-off when the mail server is down)."""
    report = alerts.alerter().flush()
    return dg.SkipReason(f"mails sent {report.mails_sent}, pending {report.pending}, failures {len(report.failures)}")
