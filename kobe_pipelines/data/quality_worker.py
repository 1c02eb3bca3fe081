"""The raw-bar check (`quality.check_raw_bars`) in a process of its own, for large batches.

Importing Great Expectations is seconds of pure Python. A worker started before the bars are
fetched imports it on the other core meanwhile (a thread would share the interpreter lock with
the fetch), then maps the bars from an Arrow IPC file (in shared memory where it has room)
without copying them and removes the file's name once mapped, checks them, sends the
`QualityReport` back on its stdout and exits at once. Anything the check prints goes to the
worker's stderr. An error in the worker, or a worker that
ends without a report, raises `QualityWorkerError` in the caller with what is known.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
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


class RawBarsCheckWorker:
    """A worker process for one raw-bar check: started on construction, handed the bars by
    `submit`, its report read by `result`; `close` (or leaving a `with` block) ends it and removes
    the bars' file, whatever happened."""

    def __init__(self) -> None:
        self._bars_file: Path | None = None
        self._process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __enter__(self) -> RawBarsCheckWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def bars_file(self) -> Path | None:
        """The file the bars were handed over in, until the worker is closed."""
        return self._bars_file

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def submit(self, bars: pa.Table, as_of: dt.date) -> None:
        """Hand over the bars (a table of `schema.BARS_ARROW_SCHEMA` columns) and the exchange
        date after which a bar is 'future'; the check starts at once."""
        handle, name = tempfile.mkstemp(prefix="kobe-raw-bars-", suffix=".arrow", dir=handover_folder(bars.nbytes))
        self._bars_file = Path(name)
        with os.fdopen(handle, "wb") as sink, pa.ipc.new_file(sink, bars.schema) as writer:
            writer.write_table(bars)
        pickle.dump((name, as_of), self._process.stdin)
        self._process.stdin.flush()

    def result(self) -> QualityReport:
        """The worker's report (waits for it); raises `QualityWorkerError` if it has none."""
        try:
            kind, payload = pickle.load(self._process.stdout)
        except (EOFError, pickle.UnpicklingError) as exc:
            code = self._process.wait()
            raise QualityWorkerError(f"the raw-bar check's worker ended (exit code {code}) without a report") from exc
        finally:
            self.close()
        if kind != "report":
            raise QualityWorkerError(f"the raw-bar check failed in its worker:\n{payload}")
        return payload

    def close(self) -> None:
        if self._process.poll() is None:  # its report is not needed (any more)
            self._process.kill()
            self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            stream.close()
        if self._bars_file is not None:
            self._bars_file.unlink(missing_ok=True)
            self._bars_file = None


def _serve() -> None:
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stdout carries the report only
    try:
        from kobe_pipelines.data import quality

        quality.import_great_expectations()
        path, as_of = pickle.load(sys.stdin.buffer)
        with pa.memory_map(path) as source:
            # mapped, its name is no longer needed: a caller killed before it could remove the
            # file leaves nothing in (shared) memory
            os.unlink(path)
            table = pa.ipc.open_file(source).read_all()
        reply = ("report", quality.check_raw_bars_table(table, as_of))
    except EOFError:  # closed before any bars came: nothing to check
        os._exit(0)
    except BaseException:
        reply = ("error", traceback.format_exc())
    pickle.dump(reply, replies)
    replies.flush()
    sys.stderr.flush()
    os._exit(0)  # the interpreter's teardown would only delay the caller's wait


if __name__ == "__main__":
    _serve()
