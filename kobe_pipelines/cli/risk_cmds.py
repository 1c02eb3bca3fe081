"""`kobe halt ...` (the kill switch) and `kobe risk ...` (the policy gate's audit log)."""

from __future__ import annotations

import getpass
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kobe_pipelines import paths
from kobe_pipelines.cli.alerts_cmds import notify_now
from kobe_pipelines.cli.errors import describe_error
from kobe_pipelines.cli.tables import Column, is_missing
from kobe_pipelines.errors import KobeError, shown_value

if TYPE_CHECKING:
    from kobe_pipelines.alerts import Alert
    from kobe_pipelines.risk.kill_switch import HaltStatus

state_option = click.option("--state", "state_path", type=click.Path(file_okay=False), default=None,
                            help="State folder (default: $KOBE_STATE_DIR or ./state).")


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


by_option = click.option("--by", default=_who, show_default="the current user", help="Who is acting (logged).")


def _fail(message: object) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.group()
def halt() -> None:
    """The kill switch (state/KILL_SWITCH): while engaged, only orders that reduce a position pass."""


def halt_line(current: HaltStatus) -> str:
    """`kobe halt status`'s first line: TRADING ALLOWED, or HALTED since when, by whom and why."""
    if not current.halted:
        return f"TRADING ALLOWED: {current.reason}"
    since = f" since {current.engaged_at}" if current.engaged_at else ""
    by = f" by {current.engaged_by}" if current.engaged_by else ""
    return f"HALTED{since}{by} because: {current.reason}"


@halt.command()
@state_option
def status(state_path: str | None) -> None:
    """Print TRADING ALLOWED, or HALTED since when, by whom and why; then the high-water mark.
    A switch that cannot be trusted (corrupt, a link, a FIFO...) reads as HALTED (fail closed)."""
    from kobe_pipelines.risk.drawdown import HighWaterMarkStore
    from kobe_pipelines.risk.kill_switch import KillSwitch

    state = paths.state_dir(state_path)
    click.echo(halt_line(KillSwitch(state).status()))
    try:
        mark = HighWaterMarkStore(state).read()
    except KobeError as exc:
        click.echo(f"high-water mark: UNUSABLE, new risk is refused ({exc})")
        return
    if mark is None:
        click.echo("high-water mark: none recorded yet")
    else:
        click.echo(f"high-water mark: {mark.high_water_mark:,.2f} USD ({mark.high_water_mark_as_of}); last equity "
                   f"{mark.last_equity:,.2f} USD ({mark.last_as_of}), drawdown {mark.drawdown(mark.last_equity):.2%}")


@halt.command()
@click.option("--reason", required=True, help="Why trading is halted (shown by `kobe halt status`).")
@by_option
@state_option
def engage(reason: str, by: str, state_path: str | None) -> None:
    """Halt trading now, and send a critical alert at once (mailed when KOBE_SMTP_HOST is set,
    always recorded in state/alerts.jsonl)."""
    from kobe_pipelines.risk.kill_switch import KillSwitch

    state = paths.state_dir(state_path)
    switch = KillSwitch(state)
    try:
        result = switch.engage(reason, by)
    except (KobeError, OSError) as exc:
        now = switch.status()
        if now.halted and not now.fail_closed and now.reason == reason.strip():  # halted; only the log failed
            click.echo(halt_line(now))
            notify_now(state, _halt_alert(now, state))
            _fail(f"the kill switch is engaged, but the halt could not be logged: {describe_error(exc)}")
        _fail(f"the kill switch was NOT engaged by this command: {describe_error(exc)} ({halt_line(now)})")
    click.echo(halt_line(result))
    notify_now(state, _halt_alert(result, state))


@halt.command()
@click.option("--reason", required=True, help="Why trading may resume (logged).")
@click.option("--rebase-hwm", is_flag=True, help="Also reset the high-water mark (after a drawdown halt).")
@click.option("--equity", type=float, default=None,
              help="Equity (USD) to rebase the high-water mark to (default: the last recorded equity).")
@by_option
@state_option
def clear(reason: str, rebase_hwm: bool, equity: float | None, by: str, state_path: str | None) -> None:
    """Resume trading: remove the kill switch (logged in state/halt_log.jsonl), and send a
    critical alert at once saying who resumed trading and what halt was cleared."""
    from kobe_pipelines.risk.drawdown import DrawdownMonitor
    from kobe_pipelines.risk.kill_switch import KillSwitch

    state = paths.state_dir(state_path)
    try:
        if rebase_hwm:
            monitor = DrawdownMonitor(state)
            if equity is None:
                mark = monitor.status()  # raises when the file is unusable: then --equity is needed
                if mark is None:
                    raise click.UsageError("no high-water mark recorded: nothing to rebase (or pass --equity)")
                equity = mark.last_equity
            rebased = monitor.rebase(equity, reason, by)
            click.echo(f"high-water mark rebased to {rebased.high_water_mark:,.2f} USD")
        elif equity is not None:
            raise click.UsageError("--equity only goes with --rebase-hwm")
        switch = KillSwitch(state)
        previous = switch.status()
        result = switch.clear(reason, by)
    except (KobeError, OSError) as exc:
        _fail(f"trading was not resumed: {describe_error(exc)}")
    click.echo(("STILL " if result.halted else "") + halt_line(result))
    notify_now(state, _cleared_alert(previous, result, reason, by, state))


def _halt_alert(status: HaltStatus, state: Path) -> Alert:
    from kobe_pipelines.alerts import Alert, AlertKind, Severity

    return Alert(AlertKind.HALT, _one_line(f"Trading halted by {status.engaged_by}: {status.reason}"),
                 "\n".join([f"reason: {status.reason}", f"engaged at: {status.engaged_at}", f"by: {status.engaged_by}",
                            f"kill switch: {state}/KILL_SWITCH",
                            "only orders that reduce a position pass until a person runs "
                            "`kobe halt clear --reason TEXT`"]),
                 severity=Severity.CRITICAL)


def _cleared_alert(previous: HaltStatus, result: HaltStatus, reason: str, by: str, state: Path) -> Alert:
    from kobe_pipelines.alerts import Alert, AlertKind, Severity

    outcome = "resumed" if not result.halted else "NOT resumed (still halted)"
    return Alert(AlertKind.HALT_CLEARED, _one_line(f"Trading {outcome} by {by}: {reason}"),
                 "\n".join([f"cleared by: {by}", f"reason: {reason}", f"now: {halt_line(result)}",
                            f"cleared halt: {halt_line(previous)}", f"kill switch: {state}/KILL_SWITCH"]),
                 severity=Severity.CRITICAL)


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@click.group()
def risk() -> None:
    """The policy gate's audit log (state/risk_audit.jsonl)."""


@risk.command("log")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Show the last N decisions.")
@click.option("--rejected", is_flag=True, help="Only rejected decisions.")
@state_option
def log_cmd(limit: int, rejected: bool, state_path: str | None) -> None:
    """Print the latest gate decisions, newest last."""
    import warnings

    from kobe_pipelines.risk.audit import read_audit_log

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = read_audit_log(paths.state_dir(state_path))
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    if rejected:
        frame = frame[~frame["approved"]]
    frame = frame.tail(limit)
    if frame.empty:
        click.echo("no decisions logged")
        return
    from kobe_pipelines.cli.tables import echo_table

    rows = [{"decided_at": row["decided_at"], "decision": "APPROVED" if row["approved"] else "REJECTED",
             "client_order_id": _logged(row, "client_order_id"),
             "order": " ".join("-" if (v := _logged(row, name)) is None else str(v) for name in ("side", "qty", "symbol")),
             "entry": _logged(row, "entry"), "reason": row["reason"]} for row in frame.to_dict("records")]
    echo_table(rows, AUDIT_COLUMNS, detail="reason")


AUDIT_COLUMNS = (
    Column("decided (UTC)", "decided_at", "time"), Column("decision", "decision"),
    Column("client order id", "client_order_id", whole=True), Column("order", "order"), Column("entry", "entry", "price"),
)  # each decision's reason is printed under its row


def refused_value(logged: str) -> str:
    """A refused raw value as the audit log spells it (Python's repr) in plain words: `nan` and
    `np.float64(nan)` read NaN, `np.int64(7)` reads 7, `None` reads (missing); anything else is
    shown as logged."""
    if logged == "None":
        return "(missing)"
    inner = _NUMPY_REPR.fullmatch(logged)
    text = inner.group(1) if inner else logged
    for number in (int, float):
        try:
            return shown_value(number(text))
        except ValueError:
            continue
    return logged


_NUMPY_REPR = re.compile(r"np\.\w+\((.*)\)")


def _logged(row: dict, name: str) -> object:
    """The logged value, or the raw value the gate refused (from `invalid`)."""
    invalid = row.get("invalid") or {}
    if name in invalid:
        return refused_value(str(invalid[name]))
    value = row.get(name)
    if name == "qty" and isinstance(value, float) and value.is_integer():
        return int(value)
    return None if is_missing(value) else value
