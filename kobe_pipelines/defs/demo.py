"""`kobe demo`: the whole loop on the embedded defaults, through Dagster, with progress.

1. the lake: raw bars of every session up to a few sessions ago, corporate actions, factors,
   checks, and a lake version;
2. the models: features, LSTM, trees, ridge and the ensemble, registered and promoted in MLflow;
3. the last few sessions one by one, as the nightly schedule would: refreeze that session,
   score it, tick the trading sensor, and run the trading run it requests (orders placed one
   evening fill on the next session's bars at the paper broker).

Runs are recorded in a persistent Dagster instance under `state/dagster/` (DAGSTER_HOME), so
`dagster dev` started with the same DAGSTER_HOME shows them in the UI afterwards.
"""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from kobe_pipelines import market_calendar, paths

console = Console(soft_wrap=True)
REPLAYED_SESSIONS = 5


def ensure_dagster_home() -> str:
    home = os.environ.get("DAGSTER_HOME") or str(paths.state_dir() / "dagster")
    os.makedirs(home, exist_ok=True)
    config = os.path.join(home, "dagster.yaml")
    if not os.path.exists(config):
        with open(config, "w") as handle:
            handle.write("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = home
    return home


def run_demo(symbols: int | None = None, start: str | None = None, replay: int = REPLAYED_SESSIONS) -> int:
    if symbols is not None:
        os.environ["KOBE_SIM_SYMBOLS"] = str(symbols)
    if start is not None:
        os.environ["KOBE_HISTORY_START"] = start
    home = ensure_dagster_home()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    paths.state_dir().mkdir(parents=True, exist_ok=True)  # the drawdown watch refuses a missing state folder

    import dagster as dg

    from kobe_pipelines.defs import build_definitions
    from kobe_pipelines.defs.driver import LoopDriver

    driver = LoopDriver(build_definitions().resources, dg.DagsterInstance.get())
    sessions = market_calendar.sessions(
        os.environ.get("KOBE_HISTORY_START") or "2019-01-02", market_calendar.last_completed_session()
    )
    history_end, replayed = str(sessions[-replay - 1].date()), [str(d.date()) for d in sessions[-replay:]]
    first = str(sessions[0].date())

    def tick_and_trade() -> str:
        request, result = driver.tick_and_trade()
        if request is None:
            return "the trading sensor requested no run"
        return request.run_key if result is not None else f"run key {request.run_key} already ran: nothing sent twice"

    steps = 2 + 2 * len(replayed)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("lake: ingest history, corporate actions, factors, checks, freeze", total=steps)
        driver.freeze(first, history_end, with_signals=False)
        progress.update(task, advance=1, description="models: features, LSTM, trees, ridge, ensemble -> MLflow")
        driver.train()
        progress.update(task, advance=1)
        keys = []
        for day in replayed:
            progress.update(task, description=f"{day}: trading sensor tick and trading run")
            keys.append(tick_and_trade())
            progress.update(task, advance=1, description=f"{day}: nightly refreeze and new signals")
            driver.freeze(day, day)
            progress.update(task, advance=1)
        progress.update(task, description="trading sensor: final tick")
        keys.append(tick_and_trade())
        repeat = tick_and_trade()

    _report(keys, repeat, home)
    return 0


def _report(run_keys: list[str], repeat: str, home: str) -> None:
    import pandas as pd

    from kobe_pipelines.cli.order_tables import trading_summary
    from kobe_pipelines.lake import Lake
    from kobe_pipelines.risk.drawdown import read_equity_log

    lake = Lake()
    state = paths.state_dir()
    equity = read_equity_log(state)
    console.print(f"\n[bold green]Done.[/] lake version {lake.current_version_id()}; trading runs: {', '.join(run_keys)}")
    console.print(f"a second tick of the trading sensor: {repeat}")
    console.print(trading_summary(state), markup=False, highlight=False, soft_wrap=True)
    if not equity.empty:
        console.print(f"equity: {equity['equity'].iloc[-1]:,.2f} USD as of {equity['as_of'].iloc[-1]}, "
                      f"max drawdown {pd.to_numeric(equity['drawdown']).max():.2%}")
    console.print(f"\n  lake:      {lake.root}  (DuckDB catalog {lake.catalog_path})")
    console.print('  query:     kobe lake query "SELECT symbol, count(*) AS bars FROM bars GROUP BY symbol"')
    console.print(f"  state:     {state}  (orders: kobe orders; models: kobe models list; halt: kobe halt status)")
    console.print(f"  UI:        DAGSTER_HOME={home} dagster dev -w workspace.yaml   then open http://127.0.0.1:3000")
