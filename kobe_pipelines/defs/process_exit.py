"""A process that loads these definitions (a run, a sensor tick, the webserver, `dagster` on the
command line) ends without the interpreter's last garbage collection over the libraries it loaded.

While it tears down its modules at exit, CPython collects reference cycles once more; with
Dagster, pandas, PyTorch, scikit-learn and MLflow loaded that is a pass over millions of objects
whose memory the operating system takes back anyway. `gc.freeze()`, as an exit handler that runs
after those registered later (Dagster's, MLflow's, the runs' own), moves every object then alive
out of the collector's sight. Every exit handler still runs, objects freed by their reference
count are still finalized (files closed and flushed), and the exit status is unchanged; only
objects held in reference cycles are not collected, which Python does not promise at exit either
(`__del__` methods of objects that still exist when the interpreter exits may not run).
"""

from __future__ import annotations

import atexit
import gc

_registered = False


def freeze_heap_at_exit() -> None:
    """Register `gc.freeze` to run at exit (once per process)."""
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
