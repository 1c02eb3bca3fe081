"""The bar checks of `data.quality` in a process of their own, with Great Expectations loaded
there and never in the caller.

Importing Great Expectations is seconds of pure Python. A worker started before the bars are
fetched imports it on the other core meanwhile (a thread would share the interpreter lock with
the fetch), says that it is ready, then answers the checks it is handed, in order: raw-bar batches (mapped from an
Arrow IPC file, in shared memory where it has room, whose name the worker removes once mapped)
and the adjusted returns of the jump checks (pickled on its stdin). Each report comes back on its
stdout; anything a check prints goes to the worker's stderr. An error in a check, or a worker
that ends without a report, raises `QualityWorkerError` in the caller with what is known, and
ends the worker. A worker whose caller dies reads the end of its stdin and exits.

`shared_worker()` is the one worker of this process (a Dagster run's steps share it): the raw
check started it, the candidate's jump checks reuse it with Great Expectations already loaded.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

    from kobe_pipelines.data.quality import QualityReport

SHARED_MEMORY = Path("/dev/shm")


def handover_folder(nbytes: int, shared: Path = SHARED_MEMORY) -> Path | None:
    """Where `nbytes` of bars are handed to the worker: shared memory when it is a writable folder
    with room for them twice over (a container's /dev/shm is often 64 MB), else None (the temporary
    folder, on disk)."""
    try:
        if not (shared.is_dir() and os.access(shared, os.W_OK)):
            return None
        room = os.statvfs(shared)
    except OSError:
        return None
    return shared if room.f_bavail * room.f_frsize >= 2 * nbytes else None


class QualityWorkerError(RuntimeError):
    """The check's worker failed (its traceback is the message) or ended without a report."""


class QualityWorker:
    """A worker process for the bar checks: started on construction, handed checks by
    `submit_raw_bars` and `submit_adjusted_jumps` (each starts as soon as the worker is free),
    their reports read by `reports`; `close` (or leaving a `with` block) ends it and removes the
    bars' files it has not mapped yet, whatever happened."""

    def __init__(self) -> None:
        self._bars_files: list[Path] = []
        self._waiting = 0  # checks submitted whose replies are not read yet
        self._answered: list[tuple[str, object]] = []  # replies read but not yet returned
        self._process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __enter__(self) -> QualityWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def bars_files(self) -> list[Path]:
        """The files the bars were handed over in, until the worker is closed."""
        return list(self._bars_files)

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def submit_raw_bars(self, bars: pa.Table, as_of: dt.date) -> None:
        """Check raw bars (a table of `schema.BARS_ARROW_SCHEMA` columns; a bar after the exchange
        date `as_of` is 'future'), as `quality.check_raw_bars_table`."""
        handle, name = tempfile.mkstemp(prefix="kobe-raw-bars-", suffix=".arrow", dir=handover_folder(bars.nbytes))
        self._bars_files.append(Path(name))
        try:
            with os.fdopen(handle, "wb") as sink, pa.ipc.new_file(sink, bars.schema) as writer:
                writer.write_table(bars)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        self._send(("raw_bars", name, as_of))

    def submit_adjusted_jumps(self, returns: pd.DataFrame, view: str, max_abs_log_return: float) -> None:
        """Check adjusted event returns, as `quality.check_adjusted_jumps`."""
        self._send(("adjusted_jumps", returns, view, max_abs_log_return))

    def _send(self, request: tuple) -> None:
        try:
            pickle.dump(request, self._process.stdin)
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:  # ended, or closed after an error
            self.close()
            raise QualityWorkerError(f"the quality worker ended before it took the {request[0]} check") from exc
        self._waiting += 1

    def reports(self) -> list[QualityReport]:
        """The reports of the checks submitted since the last call, in their order (waits for
        them); raises `QualityWorkerError`, and ends the worker, if one failed or none came."""
        while self._waiting:
            self._receive()
        replies, self._answered = self._answered, []
        self._bars_files = []  # each mapped and removed by the worker
        for kind, payload in replies:
            if kind != "report":
                self.close()
                raise QualityWorkerError(f"a check failed in the quality worker:\n{payload}")
        return [payload for _, payload in replies]

    def _receive(self) -> None:
        """Read the worker's next reply (waits for it): its "ready", or the answer to a check."""
        try:
            kind, payload = pickle.load(self._process.stdout)
        except (EOFError, pickle.UnpicklingError, ValueError) as exc:
            self.close()
            code = self._process.wait()
            raise QualityWorkerError(f"the quality worker ended (exit code {code}) without a report") from exc
        except BaseException:
            self.close()
            raise
        if kind == "ready":  # its checks are loaded (a failure to load is reported to each check)
            return
        self._waiting -= 1
        self._answered.append((kind, payload))

    def close(self) -> None:
        if self._process.poll() is None:  # its reports are not needed (any more)
            self._process.kill()
            self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            try:
                stream.close()
            except BrokenPipeError:  # a request left unsent in the buffer: the worker is gone
                pass
        for path in self._bars_files:
            path.unlink(missing_ok=True)
        self._bars_files = []
        self._waiting = 0
        self._answered = []


_shared: QualityWorker | None = None
_shared_lock = threading.Lock()


def _running_shared() -> QualityWorker:
    """This process's worker, started if there is none (or the last one ended); `_shared_lock` held."""
    global _shared
    if _shared is None or not _shared.running:
        if _shared is None:
            atexit.register(close_shared_worker)
        else:
            _shared.close()
        _shared = QualityWorker()
    return _shared


def start_shared_worker() -> None:
    """Start this process's worker now unless one is running: it loads Great Expectations on the
    other core while the caller does other work before its first check."""
    with _shared_lock:
        _running_shared()


@contextmanager
def shared_worker() -> Iterator[QualityWorker]:
    """This process's quality worker, for one caller at a time: started on first use (and again
    after one ended), ended when the process exits, or at once if the caller leaves with reports
    unread (an error: they would answer the next caller's checks)."""
    with _shared_lock:
        worker = _running_shared()
        try:
            yield worker
        finally:
            if worker._waiting or worker._answered:
                worker.close()


def close_shared_worker() -> None:
    global _shared
    if _shared is not None:
        _shared.close()
        _shared = None


def check_adjusted_jumps_in_worker(returns: dict[str, pd.DataFrame], max_abs_log_return: float
                                   ) -> dict[str, QualityReport]:
    """`quality.check_adjusted_jumps` of each view's returns, run by this process's worker."""
    with shared_worker() as worker:
        for view, frame in returns.items():
            worker.submit_adjusted_jumps(frame, view, max_abs_log_return)
        return dict(zip(returns, worker.reports(), strict=True))


def _check(quality, request: tuple) -> QualityReport:
    if request[0] == "raw_bars":
        _, path, as_of = request
        with pa.memory_map(path) as source:
            # mapped, its name is no longer needed: a caller killed before it could remove the
            # file leaves nothing in (shared) memory
            os.unlink(path)
            table = pa.ipc.open_file(source).read_all()
        return quality.check_raw_bars_table(table, as_of)
    _, returns, view, max_abs_log_return = request
    return quality.check_adjusted_jumps(returns, view, max_abs_log_return)


def _serve() -> None:
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stdout carries the replies only
    try:
        from kobe_pipelines.data import quality

        quality.import_great_expectations()
    except BaseException:
        quality, failure = None, traceback.format_exc()
    answered = _reply(replies, ("ready", None))  # (a failure to load is reported to each check)
    while True:
        try:
            request = pickle.load(sys.stdin.buffer)
        except EOFError:  # the caller is done (or gone)
            break
        if not answered:  # the caller is gone: only remove the bars it handed over
            if request[0] == "raw_bars":
                Path(request[1]).unlink(missing_ok=True)
            continue
        try:
            if quality is None:
                raise QualityWorkerError(f"the quality worker could not load its checks:\n{failure}")
            reply = ("report", _check(quality, request))
        except BaseException:
            if request[0] == "raw_bars":
                Path(request[1]).unlink(missing_ok=True)
            reply = ("error", traceback.format_exc())
        answered = _reply(replies, reply)
    sys.stderr.flush()
    os._exit(0)  # the interpreter's teardown would only delay the caller's wait


def _reply(replies, reply: tuple) -> bool:
    """Send a reply; False when the caller is gone."""
    try:
        pickle.dump(reply, replies)
        replies.flush()
    except BrokenPipeError:
        return False
    return True


if __name__ == "__main__":
    _serve()
