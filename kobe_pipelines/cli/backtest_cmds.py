"""`kobe backtest`: the production trading loop over a range of sessions, with a tear sheet."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from kobe_pipelines.errors import KobeError


@click.command()
@click.option("--start", required=True, help="First session of the backtest (YYYY-MM-DD).")
@click.option("--end", required=True, help="Last session of the backtest (YYYY-MM-DD).")
@click.option("--provider", type=click.Choice(["simulated", "files", "polygon"]), default="simulated", show_default=True,
              help="Market data for the backtest's own lake.")
@click.option("--source", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder with bars/splits/dividends (.csv or .parquet) for --provider files.")
@click.option("--lake", "lake_path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Read an existing lake instead of building one (its current version, or --lake-version).")
@click.option("--lake-version", default=None, help="Lake version id to read with --lake.")
@click.option("--symbols", type=click.IntRange(min=1), default=None,
              help="Universe size: simulated symbols (default 50), or the first N symbols (A-Z) of the data.")
@click.option("--strategy", default="ranked_long", show_default=True,
              help="ranked_long, buy_and_hold, or a strategy file's name in $KOBE_STRATEGY_DIR.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Strategy parameter, e.g. --param top_n=10 or --param stop_fraction=0.3 (repeatable).")
@click.option("--limit", "limits", multiple=True, metavar="NAME=VALUE",
              help="Risk limit for this backtest, e.g. --limit max_drawdown=0.25 (repeatable).")
@click.option("--retrain-every", type=click.IntRange(min=1), default=63, show_default=True,
              help="Sessions between walk-forward retrainings of the models.")
@click.option("--lstm/--no-lstm", "with_lstm", default=False, show_default=True,
              help="Include the LSTM member in the walk-forward ensemble (tree and linear always).")
@click.option("--signals", "signals_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Scores computed beforehand (CSV or Parquet: symbol, date, score) instead of the models.")
@click.option("--history-start", default=None, help="First session of the lake's history (default: 2 years before --start).")
@click.option("--cash", "starting_cash", type=float, default=100_000.0, show_default=True, help="Starting cash, USD.")
@click.option("--slippage-bps", type=float, default=5.0, show_default=True, help="Paper broker slippage per fill, bps.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the simulated market and the models.")
@click.option("--strategy-dir", type=click.Path(file_okay=False, path_type=Path), default=None, envvar="KOBE_STRATEGY_DIR",
              help="Folder of your own strategy files (default: $KOBE_STRATEGY_DIR).")
@click.option("--delisted-after", type=click.IntRange(min=1), default=5, show_default=True,
              envvar="KOBE_DELISTED_AFTER_SESSIONS",
              help="Sessions without a bar after which the paper broker delists a held symbol.")
@click.option("--dividend-convention", type=click.Choice(["crsp", "quandl"]), default="crsp", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: ./backtests/<strategy>-<start>-<end>); must not hold a backtest yet.")
def backtest(start, end, provider, source, lake_path, lake_version, symbols, strategy, params, limits, retrain_every,
             with_lstm, signals_file, history_start, starting_cash, slippage_bps, seed, strategy_dir, delisted_after, dividend_convention, out) -> None:
    """Run the trading loop (strategy, policy gate, paper broker, ledger, drawdown halt) day by day
    over [--start, --end] in its own state folder, and write equity, orders, fills and a tear sheet."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Table

    from kobe_pipelines.backtest.launch import run_settings
    from kobe_pipelines.backtest.report import summary_rows
    from kobe_pipelines.backtest.settings import BacktestSettings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    console = Console(soft_wrap=True)
    folder = out or Path("backtests") / f"{strategy}-{start}-{end}"
    root_level = logging.getLogger().level
    try:
        log_file = _log_to(folder.resolve() / "backtest.log")  # the trading loop's log lines, off the console
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    try:
        settings = BacktestSettings(
            start=start, end=end, out=folder.resolve(), provider=provider, source=source, symbols=symbols,
            strategy=strategy, params=params, limits=limits, retrain_every=retrain_every, with_lstm=with_lstm,
            signals_file=signals_file, history_start=history_start, starting_cash=starting_cash,
            slippage_bps=slippage_bps, seed=seed, dividend_convention=dividend_convention, lake=lake_path,
            lake_version=lake_version, delisted_after=delisted_after, strategy_dir=strategy_dir,
        )
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=console) as progress:
            task = progress.add_task("preparing", total=None)

            def on_session(done: int, total: int, session) -> None:
                progress.update(task, completed=done, total=total, description=f"session {session.date()}")

            outcome = run_settings(settings, progress=on_session,
                                   stage=lambda text: progress.update(task, description=text))
    except (KobeError, ValueError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        logging.getLogger().removeHandler(log_file)
        logging.getLogger().setLevel(root_level)
        log_file.close()
    for note in outcome.notes:
        console.print(f"[yellow]note:[/] {note}")
    table = Table(title=f"backtest {strategy} {start}..{end}", show_header=False)
    table.add_column("measure", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    for label, value in summary_rows(outcome.summary):
        table.add_row(label, value)
    console.print(table)
    timings = outcome.run.timings
    sessions = max(1.0, timings.get("sessions", 1.0))
    console.print(f"loop: {timings['loop_s']:.1f} s ({1000 * timings['loop_s'] / sessions:.1f} ms per session); "
                  f"signals and retraining: {timings['signals_s']:.1f} s")
    console.print(f"\n  report:   {outcome.out / 'report.html'}")
    console.print(f"  files:    {outcome.out}  (equity.csv, orders.csv, fills.csv, halts.csv, manifest.json, *.png)")
    console.print(f"  state:    {outcome.run.state_dir}  (KOBE_STATE_DIR={outcome.run.state_dir} kobe orders)")
    console.print(f"  log:      {outcome.out / 'backtest.log'}")


def _log_to(path: Path) -> logging.Handler:
    """Send every log record of the run (INFO and up) to `path` instead of the console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, logging.INFO))
    return handler
