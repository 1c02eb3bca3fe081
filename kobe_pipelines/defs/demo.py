"""`kobe demo`: the whole pipeline on the embedded defaults, through Dagster, with progress.

Runs are recorded in a persistent Dagster instance under `state/dagster/` (DAGSTER_HOME), so
`dagster dev` started with the same DAGSTER_HOME shows them in the UI afterwards.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from kobe_pipelines import market_calendar, paths

console = Console(soft_wrap=True)
# Dagster's step-by-step DEBUG lines would bury the progress display; warnings and errors still show.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class Stage:
    title: str
    run: Callable[[], str]


def ensure_dagster_home() -> str:
    home = os.environ.get("DAGSTER_HOME") or str(paths.state_dir() / "dagster")
    os.makedirs(home, exist_ok=True)
    config = os.path.join(home, "dagster.yaml")
    if not os.path.exists(config):
        with open(config, "w") as handle:
            handle.write("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = home
    return home


def run_demo(symbols: int | None = None, start: str | None = None) -> int:
    if symbols is not None:
        os.environ["KOBE_SIM_SYMBOLS"] = str(symbols)
    if start is not None:
        os.environ["KOBE_HISTORY_START"] = start
    home = ensure_dagster_home()

    import dagster as dg

    from kobe_pipelines.defs import build_definitions
    from kobe_pipelines.lake import Lake

    defs = build_definitions()
    instance = dg.DagsterInstance.get()
    first = os.environ.get("KOBE_HISTORY_START") or "2019-01-02"
    last = str(market_calendar.last_completed_session().date())
    first = str(market_calendar.next_session_on_or_after(first).date())

    def materialize_lake() -> str:
        job = defs.resolve_job_def("refreeze_job")
        result = job.execute_in_process(
            instance=instance,
            tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
            run_config=QUIET,
            raise_on_error=True,
        )
        version = result.output_for_node("lake_version")
        return f"lake version {version}"

    stages = [Stage(f"lake: raw bars {first}..{last}, corporate actions, factors, checks, freeze", materialize_lake)]
    outcomes = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as progress:
        overall = progress.add_task("kobe demo", total=len(stages))
        for stage in stages:
            task = progress.add_task(stage.title, total=1)
            outcomes.append(stage.run())
            progress.update(task, completed=1)
            progress.advance(overall)

    lake = Lake()
    console.print("\n[bold green]Done.[/] " + "; ".join(outcomes))
    console.print(f"  lake:      {lake.root}  (catalog {lake.catalog_path})")
    console.print('  query:     kobe lake query "SELECT symbol, count(*) AS bars FROM bars GROUP BY symbol"')
    console.print("  versions:  kobe lake versions")
    console.print(f"  state:     {paths.state_dir()}")
    console.print(f"  UI:        DAGSTER_HOME={home} dagster dev -w workspace.yaml   then open http://127.0.0.1:3000")
    return 0
