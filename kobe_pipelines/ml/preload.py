"""Loading the scoring libraries (PyTorch, scikit-learn, MLflow and the model modules over them)
on a background thread, while a run does other work first.

A refreeze run spends seconds on the lake (fetch, checks, freeze) before it scores; most of that
time the run's own thread waits on files, DuckDB or the quality worker, so the imports that
scoring needs cost little beside it. `start()` begins them once per process; `wait()` (the
scoring step calls it first) lets them finish before the step imports anything itself (Python's
per-module import locks keep the lake steps' own imports meanwhile safe). An import that fails on
the thread is not reported there: the step's own import raises it again, with its traceback.
"""

from __future__ import annotations

import importlib
import threading

# what scoring the production ensemble imports (`signals`: registry, pyfunc model, members, lineage;
# the stores MLflow opens for its embedded SQLite registry)
SCORING_MODULES = (
    "kobe_pipelines.ml.registry",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "kobe_pipelines.ml.training",
    "kobe_pipelines.ml.scoring",
    "kobe_pipelines.trading.cycle",
    "kobe_pipelines.trading.lineage",
)

_thread: threading.Thread | None = None
_lock = threading.Lock()


def _load(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - raised again by the step's own import
            return


def start(modules: tuple[str, ...] = SCORING_MODULES) -> None:
    """Begin importing `modules` on a background (daemon) thread, unless this process already did."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_load, args=(modules,), name="kobe-preload", daemon=True)
            _thread.start()


def wait() -> None:
    """Let the background imports finish (at once if none were started)."""
    with _lock:
        thread = _thread
    if thread is not None:
        thread.join()
