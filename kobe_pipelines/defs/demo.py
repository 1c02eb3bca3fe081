"""`kobe demo`: the whole loop on the embedded defaults, through Dagster, with progress.

On a fresh state:
1. the lake: raw bars of every session up to a few sessions ago, corporate actions, the candidate
   and its checks, and a lake version (`refreeze_job`);
2. the models: features, LSTM, trees, ridge and the ensemble, registered and promoted in MLflow
   (`training_job`);
3. the last few sessions one by one, as the nightly schedule would: a tick of the trading sensor
   and the trading run it requests (`trading_job`: orders placed one evening fill on the next
   session's bars at the paper broker), then that session's refreeze and signals.

On existing state it first says what it will do: ingest only the sessions the lake lacks, keep
the production model unless `--retrain` is given, and finish at once when nothing is new.

Runs are recorded in the persistent Dagster instance under `state/dagster/` (`DAGSTER_HOME`), so
`dagster dev` started with the same DAGSTER_HOME shows them, under their job names, afterwards.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from kobe_pipelines import paths, settings
from kobe_pipelines.defs.lake.sessions import SessionRange

console = Console(soft_wrap=True)
REPLAYED_SESSIONS = 5
# Dagster steps of each run the demo makes (what the progress bar counts)
STEPS = {"history": 4, "refreeze": 5, "training": 3, "trading": 3}
DAGSTER_YAML = """\
# written by `kobe demo`; see the README (Dagster's own storage) for pruning old runs
telemetry:
  enabled: false
retention:
  schedule:
    purge_after_days: 90
  sensor:
    purge_after_days:
      skipped: 7
      failure: 90
      success: 90
"""


@dataclass(frozen=True)
class DemoPlan:
    """What one `kobe demo` does: ingest `history` (one run), train or not, then replay sessions."""

    history: SessionRange | None
    train: bool
    replay: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def nothing_to_do(self) -> bool:
        return self.history is None and not self.train and not self.replay

    @property
    def steps(self) -> int:
        history = STEPS["history"] if self.history else 0
        training = STEPS["training"] if self.train else 0
        return history + training + len(self.replay) * (STEPS["refreeze"] + STEPS["trading"]) + STEPS["trading"]


def plan_demo(sessions: list[dt.date], lake_last: dt.date | None, production: str | None, *,
              replay: int = REPLAYED_SESSIONS, retrain: bool = False) -> DemoPlan:
    """The demo's plan over `sessions` (the simulated history, oldest first), given the lake's
    last session and the production version of kobe-ensemble (None: none yet)."""
    notes = []
    if lake_last is None:
        history = SessionRange(sessions[0], sessions[-replay - 1])
        replayed = tuple(str(d) for d in sessions[-replay:])
        notes.append(f"ingest {history} into the empty lake, then replay {len(replayed)} sessions one by one")
    else:
        new = [d for d in sessions if d > lake_last]
        # many new sessions: all but the last few in one run, those replayed one by one
        history = SessionRange(new[0], new[-replay - 1]) if len(new) > replay else None
        replayed = tuple(str(d) for d in new[-replay:]) if new else ()
        notes.append(f"the lake holds sessions through {lake_last}: "
                     + (f"{len(new)} new session(s), {new[0]}..{new[-1]}" if new else "nothing new"))
    if production is None:
        train = True
        notes.append("no production model yet: train and register one")
    elif retrain:
        train = True
        notes.append(f"--retrain: train again; production (kobe-ensemble v{production}) moves only if the new version scores better")
    else:
        train = False
        notes.append(f"keep the production model kobe-ensemble v{production} (pass --retrain to train again)")
    return DemoPlan(history, train, replayed, tuple(notes))


class StepProgress:
    """Moves the progress bar as Dagster reports each step of each run (a Dagster event listener)."""

    def __init__(self, progress: Progress, task, label: str = ""):
        self.progress, self.task, self.label = progress, task, label

    def __call__(self, event) -> None:
        kind = event.dagster_event.event_type_value if event.dagster_event else None
        step = event.step_key or ""
        if kind == "STEP_START":
            self.progress.update(self.task, description=f"{self.label}: {step}")
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            self.progress.advance(self.task)

    def settle(self, completed: int) -> None:
        """After a run: the bar at exactly the steps planned so far (a run may skip some)."""
        self.progress.update(self.task, completed=completed)


def ensure_dagster_home(environ=None) -> Path:
    home = settings.dagster_home(environ)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


def quiet_library_logs() -> None:
    """Library warnings and log lines go through the demo's console, above the progress bar, and
    MLflow's informational lines (its table creation on a fresh store) are not shown."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when MLflow is imported
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # its own bars would break ours
    handler = RichHandler(console=console, show_time=False, show_path=False)
    handler.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    for name in ("", "py.warnings"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.WARNING)


def production_version(tracking_uri: str) -> str | None:
    """The production version of kobe-ensemble, or None (an embedded store not created yet has none)."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).exists():
        return None
    from kobe_pipelines.ml.registry import ENSEMBLE_MODEL, ModelRegistry

    found = ModelRegistry(tracking_uri).version_by_alias(ENSEMBLE_MODEL)
    return str(found.version) if found is not None else None


def run_demo(symbols: int | None = None, start: str | None = None, replay: int = REPLAYED_SESSIONS, retrain: bool = False) -> int:
    quiet_library_logs()
    paths.state_dir().mkdir(parents=True, exist_ok=True)  # the trading run refuses a missing state folder
    home = ensure_dagster_home()

    import dagster as dg

    from kobe_pipelines import market_calendar
    from kobe_pipelines.defs import build_definitions
    from kobe_pipelines.defs.driver import LoopDriver
    from kobe_pipelines.defs.lake.assets import last_session_held
    from kobe_pipelines.defs.resources import MarketDataResource
    from kobe_pipelines.lake import Lake

    configured = settings.MarketDataSettings.from_env()
    market = configured.replace(**{k: v for k, v in (("sim_symbols", symbols), ("history_start", start)) if v is not None})
    if market.provider == "simulated" and (market.sim_symbols, market.history_start) != (configured.sim_symbols,
                                                                                         configured.history_start):
        # a refreeze outside the demo reads the environment: another universe is another market,
        # whose bars and actions the lake's checks refuse against this one
        console.print(f"note: --symbols/--start apply to this demo only; before extending this lake with "
                      f"refreeze_job, the schedule or a lake freeze, set KOBE_SIM_SYMBOLS={market.sim_symbols} "
                      f"KOBE_HISTORY_START={market.history_start}")
    resources = build_definitions().resources
    resources["market_data"] = MarketDataResource(**{name: getattr(market, name) for name in settings.MarketDataSettings.ENV})
    sessions = [d.date() for d in market_calendar.sessions(market.history_start, market.sim_end or market_calendar.last_completed_session())]
    plan = plan_demo(sessions, last_session_held(Lake()), production_version(settings.mlflow_tracking_uri()),
                     replay=replay, retrain=retrain)
    console.print("[bold]demo plan[/]: " + "; ".join(plan.notes))
    instance = dg.DagsterInstance.from_config(str(home))
    if plan.nothing_to_do:
        driver = LoopDriver(resources, instance)
        request, result = driver.tick_and_trade()
        traded = result is not None
        console.print("[bold green]Nothing changed.[/] " + (f"The trading sensor requested {request.run_key}." if traded else
                      "The lake, the models and the trading runs are up to date."))
        _report(home, brief=not traded)
        return 0

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("starting", total=plan.steps)
        listener = StepProgress(progress, task)
        driver = LoopDriver(resources, instance, listener=listener)
        done = 0
        keys: list[str] = []

        def tick_and_trade() -> None:
            nonlocal done
            listener.label = "trading sensor tick"
            progress.update(task, description=listener.label)
            request, result = driver.tick_and_trade()
            if request is not None:
                keys.append(request.run_key if result is not None else f"{request.run_key} (already ran: nothing sent twice)")
            done += STEPS["trading"]
            listener.settle(done)

        if plan.history is not None:
            listener.label = f"lake {plan.history}"
            driver.freeze(str(plan.history.first), str(plan.history.last), with_signals=False)
            done += STEPS["history"]
            listener.settle(done)
        if plan.train:
            listener.label = "models"
            driver.train()
            done += STEPS["training"]
            listener.settle(done)
        for day in plan.replay:
            tick_and_trade()
            listener.label = f"refreeze {day}"
            driver.freeze(day, day)
            done += STEPS["refreeze"]
            listener.settle(done)
        tick_and_trade()
        progress.update(task, description="done")

    console.print(f"\n[bold green]Done.[/] trading runs: {', '.join(keys) or 'none requested'}")
    _report(home)
    return 0


def _report(home: Path, brief: bool = False) -> None:
    from kobe_pipelines.lake import Lake

    lake = Lake()
    state = paths.state_dir()
    if not brief:
        _trading_summary(state)
    tracking = settings.mlflow_tracking_uri()
    # bare names: the README activates the environment once (`source .venv/bin/activate`)
    kobe, dagster, mlflow = "kobe", "dagster", "mlflow"
    console.print(f"\n  lake:    version {lake.current_version_id()} in {lake.root}")
    console.print(f'  query:   {kobe} lake query "SELECT symbol, count(*) AS bars FROM bars GROUP BY symbol"')
    console.print(f"  state:   {state}  ({kobe} orders; {kobe} models list; {kobe} halt status)")
    console.print(f"  MLflow:  {mlflow} ui --backend-store-uri {tracking}")
    console.print("           then http://127.0.0.1:5000 > Model training > Experiments > kobe-models (runs), Models (registry)")
    console.print(f"  Dagster: DAGSTER_HOME={home} {dagster} dev -w workspace.yaml")
    console.print("           then http://127.0.0.1:3000 > Runs (refreeze_job, training_job, trading_job), Assets")


def _trading_summary(state: Path) -> None:
    import pandas as pd

    from kobe_pipelines.cli.order_tables import trading_summary
    from kobe_pipelines.risk.drawdown import read_equity_log

    console.print(trading_summary(state), markup=False, highlight=False, soft_wrap=True)
    equity = read_equity_log(state)
    if not equity.empty:
        console.print(f"equity: {equity['equity'].iloc[-1]:,.2f} USD as of {equity['as_of'].iloc[-1]}, "
                      f"max drawdown {pd.to_numeric(equity['drawdown']).max():.2%}")
