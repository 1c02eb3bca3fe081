"""The kill switch: the file `state/KILL_SWITCH`, present = trading halted.

The file holds JSON `{"reason", "engaged_at" (ISO 8601 UTC), "engaged_by"}` and is written
atomically. Engaging and clearing are appended to `state/halt_log.jsonl`; nothing clears the
switch automatically, only `clear()` (`kobe halt clear --reason ...`).

Fail closed: when the state folder is missing or is not a folder, or the file cannot be read,
is empty, is not JSON or lacks a field, the status is *halted* with a reason saying so. So is
anything at the path but a regular file: a symbolic link (dangling or not), a FIFO, a directory,
a device (`regular_files`); reading never blocks. Only a readable state folder with nothing at
the path means "not halted".
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from dataclasses import dataclass
from typing import Any, Callable

from kobe_pipelines import paths
from kobe_pipelines.errors import RecordError, StateFileError
from kobe_pipelines.fsutil import atomic_write_json, fsync_dir
from kobe_pipelines.regular_files import read_regular, version_of
from kobe_pipelines.risk.jsonl import append_record, iter_records

KILL_SWITCH_NAME = "KILL_SWITCH"
HALT_LOG_NAME = "halt_log.jsonl"
MAX_SWITCH_BYTES = 1 << 20  # a switch holds three short texts; more is not a switch this code wrote
_FIELDS = ("reason", "engaged_at", "engaged_by")


@dataclass(frozen=True)
class HaltStatus:
    """Whether trading is halted, and why. `fail_closed` is True when halted only because the
    state could not be read (the reason says what is wrong)."""

    halted: bool
    reason: str
    engaged_at: str | None = None
    engaged_by: str | None = None
    fail_closed: bool = False


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso_utc(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a `Z`-free `+00:00` offset; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).isoformat()


class KillSwitch:
    """Reads and writes `state/KILL_SWITCH`. `status()` is cheap enough for every order: one
    `stat` when the switch is clear, and a re-read only when the file changed on disk."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, clock: Callable[[], dt.datetime] | None = None):
        self.state_dir = paths.state_dir(state_dir)
        self.path = self.state_dir / KILL_SWITCH_NAME
        self.log_path = self.state_dir / HALT_LOG_NAME
        self._clock = clock or utc_now
        self._cache: tuple[tuple[int, ...], HaltStatus] | None = None

    def status(self) -> HaltStatus:
        try:
            key = version_of(self.path)
        except StateFileError as exc:
            return _closed(f"kill switch {exc.path} {exc.problem}")
        if key is None:
            return self._absent()
        cached = self._cache
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            found = read_regular(self.path, MAX_SWITCH_BYTES)
        except StateFileError as exc:
            return _closed(f"kill switch {exc.path} {exc.problem}")
        if found is None:  # removed since the lstat
            return self._absent()
        status = self._parse(found.data)
        self._cache = (found.version, status)
        return status

    def engage(self, reason: str, by: str) -> HaltStatus:
        """Halt trading (creating the state folder if needed) and log it. Re-engaging replaces
        the reason shown by `status()`; the log keeps every engagement."""
        reason, by = _text("reason", reason), _text("engaged_by", by)
        record = {"reason": reason, "engaged_at": iso_utc(self._clock()), "engaged_by": by}
        if self.path.is_dir() and not self.path.is_symlink():
            # A rename cannot replace a folder. The switch already reads as halted (fail closed).
            raise StateFileError(self.path, "is a directory, so the switch cannot be written (it reads as halted); "
                                            "remove the directory, then engage again")
        # Halt first: a failure to log must never leave trading running.
        atomic_write_json(self.path, record)
        append_record(self.log_path, {"event": "engage", "at": record["engaged_at"], "by": by, "reason": reason})
        return HaltStatus(True, reason, record["engaged_at"], by)

    def clear(self, reason: str, by: str) -> HaltStatus:
        """Resume trading: log the clear (with what it cleared), then remove the file.

        An explicit clear also repairs a corrupt or unreadable switch file and creates a missing
        state folder: a person has decided that trading may go on here.
        """
        reason, by = _text("reason", reason), _text("cleared_by", by)
        previous = self.status()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        append_record(
            self.log_path,
            {
                "event": "clear",
                "at": iso_utc(self._clock()),
                "by": by,
                "reason": reason,
                "cleared": {"halted": previous.halted, "reason": previous.reason, "engaged_at": previous.engaged_at,
                            "engaged_by": previous.engaged_by},
            },
        )
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            os.rmdir(self.path)  # an (empty) folder in the switch's place; a full one raises
        fsync_dir(self.state_dir)
        self._cache = None
        return self.status()

    def history(self) -> list[dict[str, Any]]:
        """Every engage/clear event, oldest first."""
        return list(iter_records(self.log_path))

    def _absent(self) -> HaltStatus:
        try:
            st = os.stat(self.state_dir)
        except FileNotFoundError:
            return _closed(f"state folder {self.state_dir} does not exist (create it, or `kobe halt clear`)")
        except OSError as exc:
            return _closed(f"state folder {self.state_dir} cannot be read ({exc})")
        if not stat.S_ISDIR(st.st_mode):
            return _closed(f"state folder {self.state_dir} is not a folder")
        # A folder we may not search made the stat of the switch fail with PermissionError above.
        return _CLEAR

    def _parse(self, data: bytes) -> HaltStatus:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _closed(f"kill switch {self.path} is not UTF-8 text ({exc})")
        if not text.strip():
            return _closed(f"kill switch {self.path} is empty")
        try:
            data = json.loads(text)
        except ValueError as exc:
            return _closed(f"kill switch {self.path} is not valid JSON ({exc})")
        if not isinstance(data, dict):
            return _closed(f"kill switch {self.path} is not a JSON object")
        missing = [f for f in _FIELDS if not isinstance(data.get(f), str) or not data[f].strip()]
        if missing:
            return _closed(f"kill switch {self.path} lacks field(s) {', '.join(missing)}", data)
        return HaltStatus(True, data["reason"], data["engaged_at"], data["engaged_by"])


_CLEAR = HaltStatus(False, "kill switch not engaged")


def _closed(problem: str, data: dict[str, Any] | None = None) -> HaltStatus:
    data = data or {}
    shown = data.get("reason") if isinstance(data.get("reason"), str) else None
    reason = f"fail-closed: {problem}" + (f"; recorded reason: {shown}" if shown else "")
    at = data.get("engaged_at") if isinstance(data.get("engaged_at"), str) else None
    by = data.get("engaged_by") if isinstance(data.get("engaged_by"), str) else None
    return HaltStatus(True, reason, at, by, fail_closed=True)


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RecordError("halt", "request", field, "must be a non-empty text", value)
    return value.strip()
