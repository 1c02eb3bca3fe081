"""`kobe demo` and `kobe verify`."""

from __future__ import annotations

import sys

import click


@click.command()
@click.option("--symbols", type=int, default=None, help="Simulated universe size (default 24, or $KOBE_SIM_SYMBOLS).")
@click.option("--start", default=None, help="First session (default 2019-01-02, or $KOBE_HISTORY_START).")
@click.option("--retrain", is_flag=True, help="On existing state, train again (production moves only on a better score).")
def demo(symbols: int | None, start: str | None, retrain: bool) -> None:
    """Run the whole pipeline on the embedded defaults and print where the results are. On
    existing state, ingest only what is new and keep the production model unless --retrain."""
    from kobe_pipelines.defs.demo import run_demo

    sys.exit(run_demo(symbols=symbols, start=start, retrain=retrain))


@click.command()
@click.option("--phase", type=click.IntRange(1, 5), multiple=True, help="Phase(s) to check (default: all available).")
def verify(phase: tuple[int, ...]) -> None:
    """Live checks of each phase on the embedded defaults, in a temporary lake and state folder."""
    from kobe_pipelines.verify.runner import print_table, run_phases

    results = run_phases(list(phase) or None)
    print_table(results)
    sys.exit(0 if results and all(r.passed for r in results) else 1)
