"""`kobe alerts` (what was raised and what became of it) and `kobe alerts flush` (mail the queue now).

Also `notify_now`, which the halt commands use to send their critical alert at once.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from kobe_pipelines import paths
from kobe_pipelines.cli.tables import Column, echo_table

state_option = click.option("--state", "state_path", type=click.Path(file_okay=False), default=None,
                            help="State folder (default: $KOBE_STATE_DIR or ./state).")

MAIL_OFF = "mail is off: KOBE_SMTP_HOST is not set"


def _quiet_alert_log() -> None:
    """The commands print what happened to each alert; the alerter's own log lines would repeat it."""
    logging.getLogger("kobe_pipelines.alerts").addHandler(logging.NullHandler())


def notify_now(state: Path, alert) -> None:
    """Send `alert` at once: mailed when SMTP is configured, always recorded in state/alerts.jsonl.
    Says where it went on stdout; a problem is a warning on stderr (the caller's action stands)."""
    from kobe_pipelines.alerts import ALERT_LOG_FILE, Alerter, AlertSettings, build_alerter
    from kobe_pipelines.errors import ConfigError

    _quiet_alert_log()
    log_file = state / ALERT_LOG_FILE
    try:
        alerter = build_alerter(state)
    except ConfigError as exc:
        Alerter(AlertSettings(), state).send(alert)  # record it at least
        click.echo(f"warning: alert not mailed ({exc}); recorded in {log_file}", err=True)
        return
    recorded, report = alerter.send_now(alert)
    if not recorded:
        click.echo(f"warning: the alert could not be recorded in {log_file} or queued (see the messages above)",
                   err=True)
    if not report.email_enabled:
        click.echo(f"alert: recorded in {log_file}; {MAIL_OFF}")
    elif alert.id in {item.alert.id for item in alerter.pending()}:
        why = "; ".join(report.failures) or "another process is mailing the outbox right now"
        click.echo(f"warning: alert not mailed yet ({why}); it waits in the outbox: `kobe alerts flush` sends it",
                   err=True)
    else:
        click.echo(f"alert: mailed to {', '.join(alerter.settings.alert_to)}")


@click.group(invoke_without_command=True)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Show the last N alerts.")
@click.option("--queued", is_flag=True, help="Only alerts waiting in the outbox.")
@state_option
@click.pass_context
def alerts(ctx: click.Context, limit: int, queued: bool, state_path: str | None) -> None:
    """List the latest alerts, newest last, with what became of each: mailed, queued,
    undeliverable, or recorded only (mail off)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = state_path
        return
    from kobe_pipelines.alerts import AlertSettings, Delivery, alert_history
    from kobe_pipelines.errors import ConfigError

    state = paths.state_dir(state_path)
    _quiet_alert_log()
    entries = alert_history(state)
    waiting = sum(1 for e in entries if e.delivery is Delivery.QUEUED)
    if queued:
        entries = [e for e in entries if e.delivery is Delivery.QUEUED]
    if entries:
        echo_table([{"created_at": e.alert.created_at, "severity": e.alert.severity.value.upper(), "kind": e.alert.kind,
                     "delivery": e.delivery.value + (f" {e.detail}" if e.detail else ""), "subject": e.alert.subject}
                    for e in entries[-limit:]], ALERT_COLUMNS, detail="subject")
    else:
        click.echo("no alerts queued" if queued else f"no alerts recorded in {state}")
    try:
        settings = AlertSettings.from_env()
        mail = f"mail to {', '.join(settings.alert_to)}" if settings.email_enabled else MAIL_OFF
    except ConfigError as exc:
        mail = f"mail is misconfigured: {exc}"
    click.echo(f"queue: {waiting} alert(s) waiting; {mail}")


ALERT_COLUMNS = (
    Column("created (UTC)", "created_at", "time"), Column("severity", "severity"), Column("kind", "kind"),
    Column("delivery", "delivery"),
)  # each alert's subject is printed under its row


@alerts.command()
@state_option
@click.pass_obj
def flush(parent_state: str | None, state_path: str | None) -> None:
    """Mail every queued alert now (grouping windows and retry back-off do not apply).
    Exit code 1 when something is left undelivered."""
    from kobe_pipelines.alerts import build_alerter, pending_outbox

    state = paths.state_dir(state_path or parent_state)
    _quiet_alert_log()
    alerter = build_alerter(state)  # a ConfigError names the setting (one line, exit 1)
    if not alerter.email_enabled:
        waiting = len(pending_outbox(state).pending)
        if waiting:
            click.echo(f"error: {waiting} alert(s) wait in the outbox but {MAIL_OFF} (set it, then flush again)",
                       err=True)
            sys.exit(1)
        click.echo(f"nothing to mail: {MAIL_OFF}; alerts are recorded in {state}/alerts.jsonl")
        return
    report = alerter.flush(force_all=True)
    if report.skipped:
        click.echo("error: another process is mailing the outbox right now; run again when it is done", err=True)
        sys.exit(1)
    click.echo(f"mailed {report.mails_sent} mail(s) carrying {report.alerts_sent} alert(s) to "
               f"{', '.join(alerter.settings.alert_to)}; {report.pending} left in the outbox")
    if report.corrupt_lines:
        click.echo(f"warning: {report.corrupt_lines} unreadable outbox line(s) set aside in "
                   f"{state}/alert_outbox.corrupt.jsonl", err=True)
    if report.undeliverable:
        click.echo(f"warning: {report.undeliverable} alert(s) given up after every attempt: "
                   f"{state}/alert_undeliverable.jsonl", err=True)
    if report.failures:
        click.echo(f"error: not delivered: {'; '.join(report.failures)}", err=True)
        sys.exit(1)

