"""What every process has approved, and the lock that makes decisions one at a time.

`DecisionLock`: an exclusive `fcntl` lock on `state/.decisions.lock`, re-entrant within a
process. A decision (reading the book, deciding, logging it) is made under it, so two processes
never decide against the same state: the second reads the first's approval (in the audit log,
and as an order not filled yet in the ledger or at the broker) before it decides.

`ApprovalHistory`: the approved decisions of the audit log (`risk_audit.jsonl`), read
incrementally: each call of `catch_up` (under the lock) reads only the bytes appended since the
last one, by any process. It answers the duplicate-id check (the latest approval of each client
order id, with the intent it approved) and the rate limit (approval times in the last minute),
so both count the approvals of every process, not only this one's. Records this process wrote
itself (`own_prefix`) are counted when approved, not again when read back. A torn last line
(a writer killed mid-append) is moved aside under the lock, before anything is appended after it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import fcntl
import json
import os
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from kobe_pipelines.regular_files import open_regular, regular_stat
from kobe_pipelines.risk.jsonl import TornLineWarning, repair_torn_tail

DECISION_LOCK_NAME = ".decisions.lock"


class DecisionLock:
    """See the module docstring. Without a state folder it locks nothing (the gate then rejects
    every order: a missing folder counts as halted, and nothing can be logged)."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / DECISION_LOCK_NAME
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._thread_lock:
            if self._depth == 0:
                self._acquire()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release()

    def _acquire(self) -> None:
        if self._fd is None:  # opened once, kept for the process's life
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                return
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def _release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._thread_lock:
            if self._fd is not None and self._depth == 0:
                fd, self._fd = self._fd, None
                os.close(fd)


@dataclass(frozen=True)
class Approval:
    """The latest approval of one client order id: its decision and the intent it approved (as
    the audit log typed it)."""

    decision_id: str
    decided_at: str
    intent: dict[str, Any]


class ApprovalHistory:
    def __init__(self, path: Path, own_prefix: str, window_s: float, keep_times: int):
        self.path = Path(path)
        self.own_prefix = own_prefix
        self.window_s = window_s
        self.keep_times = max(1, keep_times)  # the rate limit needs only the latest this many
        self.approvals: dict[str, Approval] = {}
        self._times: list[float] = []  # epoch seconds of approvals, sorted
        self._offset = 0
        self._identity: tuple[int, int] | None = None

    # -- reading the log ------------------------------------------------------------------
    def catch_up(self) -> None:
        """Read what was appended since the last call (raises OSError or StateFileError if the
        log cannot be read, or is a link, FIFO or anything but a regular file)."""
        stat = regular_stat(self.path)
        if stat is None:
            return
        if (stat.st_dev, stat.st_ino) == self._identity and stat.st_size == self._offset:
            return  # nothing new: the usual case, one stat
        try:
            handle = os.fdopen(open_regular(self.path, os.O_RDONLY), "rb")
        except FileNotFoundError:
            return
        with handle:
            stat = os.fstat(handle.fileno())
            identity = (stat.st_dev, stat.st_ino)
            if identity != self._identity or stat.st_size < self._offset:  # a new or rewritten file
                self._identity, self._offset = identity, 0
            if stat.st_size == self._offset:
                return
            handle.seek(self._offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        for raw in data[:end].split(b"\n"):
            if raw.strip():
                self._read_line(raw)
        self._offset += end
        if end < len(data):  # bytes after the last newline: a writer died mid-append
            side = repair_torn_tail(self.path)
            warnings.warn(f"{self.path}: a torn last line ({len(data) - end} bytes) was moved to {side}",
                          TornLineWarning, stacklevel=2)

    def _read_line(self, raw: bytes) -> None:
        try:
            record = json.loads(raw)
        except ValueError:
            return
        if not isinstance(record, dict) or record.get("approved") is not True:
            return
        decision_id = str(record.get("decision_id") or "")
        if decision_id.startswith(self.own_prefix):
            return
        intent = record.get("intent") or {}
        coid, decided_at = intent.get("client_order_id"), record.get("decided_at")
        if isinstance(coid, str) and isinstance(decided_at, str):
            self.approvals[coid] = Approval(decision_id, decided_at, intent)
            self._add_time(_epoch(decided_at))

    # -- this process's approvals ---------------------------------------------------------
    def add(self, client_order_id: str, approval: Approval, at_s: float) -> None:
        self.approvals[client_order_id] = approval
        self._add_time(at_s)

    def appended(self, size: int) -> None:
        """This process appended `size` bytes of its own records right at the end it had read
        (under the decision lock): nothing to read back."""
        if self._identity is not None:
            self._offset += size

    def _add_time(self, at_s: float) -> None:
        times = self._times
        if not times or at_s >= times[-1]:
            times.append(at_s)
        else:
            bisect.insort(times, at_s)
        if len(times) > self.keep_times:
            del times[: len(times) - self.keep_times]

    # -- answers --------------------------------------------------------------------------
    def recent(self, now_s: float) -> int:
        """Approvals in the trailing window ending at `now_s` (older ones are forgotten)."""
        cut = bisect.bisect_right(self._times, now_s - self.window_s)
        if cut:
            del self._times[:cut]
        return len(self._times)


def _epoch(stamp: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()
