"""Drawdown auto-halt: a high-water mark of account equity persisted in `state/`.

`state/high_water_mark.json` holds the highest account equity seen (USD) and the latest
equity reading, written atomically on every update, so a restarted process carries on from
the same peak. Drawdown = (high-water mark - equity) / high-water mark, a fraction. Each
reading is also appended to `state/equity_log.jsonl` (`read_equity_log`) for plots.

At a drawdown of `max_drawdown` (default 0.15) or more the monitor engages the kill switch
with the figure in the reason and sends one alert. The halt latches: a recovery of equity
never clears it; a person does (`kobe halt clear`), and after a drawdown halt usually also
rebases the peak to today's equity (`rebase`, `kobe halt clear --rebase-hwm`), or the next
update halts again.

Fail closed: a corrupt or unreadable high-water-mark file is never overwritten by an update;
the monitor engages the kill switch naming the file and the problem. Corrupt includes anything
at the path but a regular file (a link, a FIFO, a directory), a field that is not a finite
amount, a mark below the last equity, and a mark deleted while the equity log holds readings
(`HighWaterMarkStore`): none of them restarts the peak.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from kobe_pipelines import paths
from kobe_pipelines.errors import RecordError, StateFileError
from kobe_pipelines.fsutil import atomic_write_json
from kobe_pipelines.regular_files import read_regular, regular_stat, version_of
from kobe_pipelines.risk.jsonl import append_record, iter_records
from kobe_pipelines.risk.kill_switch import KillSwitch, iso_utc, utc_now

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

HWM_NAME = "high_water_mark.json"
EQUITY_LOG_NAME = "equity_log.jsonl"  # one line per reading: for the equity / drawdown plot
MAX_HWM_BYTES = 1 << 20  # a mark is five fields; more is not a mark this code wrote
Alert = Callable[[str, str], None]


@dataclass(frozen=True)
class HighWaterMark:
    high_water_mark: float  # USD
    high_water_mark_as_of: str
    last_equity: float  # USD
    last_as_of: str
    updated_at: str  # ISO 8601 UTC

    def drawdown(self, equity: float) -> float:
        """Drawdown of `equity` from the larger of the peak and `equity` itself, a fraction."""
        peak = max(self.high_water_mark, equity)
        return (peak - equity) / peak if peak > 0 else 0.0


class HighWaterMarkStore:
    """The high-water-mark file. `read()` re-reads only when the file changed on disk.

    Fail closed, never reset: `read()` raises `StateFileError` naming the file (and the field)
    when the path holds anything but a regular file (`regular_files`), when the file is not
    one well-formed JSON object of finite amounts with the mark at or above the last equity,
    and when it is missing although the equity log holds readings (a deleted mark would
    otherwise restart the peak from the next, lower, equity).
    """

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, durable: bool = True):
        """`durable=False`: writes stay atomic but do not wait for the disk (backtests only)."""
        folder = paths.state_dir(state_dir)
        self.durable = durable
        self.path = folder / HWM_NAME
        self.equity_log_path = folder / EQUITY_LOG_NAME
        self._cache: tuple[tuple[int, ...], HighWaterMark] | None = None

    def read(self) -> HighWaterMark | None:
        """The stored mark, None when no mark was ever recorded; `StateFileError` when the file
        exists but cannot be read or parsed, or is missing with readings in the equity log
        (callers treat that as halted)."""
        key = version_of(self.path)
        if key is None:
            self._refuse_missing_with_history()
            return None
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        found = read_regular(self.path, MAX_HWM_BYTES)
        if found is None:  # removed since the lstat
            self._refuse_missing_with_history()
            return None
        mark = parse_high_water_mark(self.path, found.data)
        self._cache = (found.version, mark)
        return mark

    def write(self, mark: HighWaterMark) -> None:
        atomic_write_json(self.path, mark.__dict__, fsync=self.durable)

    def _refuse_missing_with_history(self) -> None:
        log = regular_stat(self.equity_log_path)
        if log is not None and log.st_size > 0:
            raise StateFileError(self.path, f"is missing although {self.equity_log_path.name} holds equity readings: the "
                                            "drawdown protection is not restarted from a lower peak; set the mark with "
                                            "`kobe halt clear --rebase-hwm --equity USD`")


def parse_high_water_mark(path: os.PathLike[str] | str, data: bytes) -> HighWaterMark:
    """The mark in `data` (the bytes of `path`), or `StateFileError` naming the file and the field."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StateFileError(path, f"is not UTF-8 text ({exc})") from exc
    if not text.strip():
        raise StateFileError(path, "is empty")
    try:
        payload = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _DuplicateKey as exc:
        raise StateFileError(path, f"field '{exc.args[0]}' appears more than once") from None
    except ValueError as exc:
        raise StateFileError(path, f"is not valid JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise StateFileError(path, "is not a JSON object")
    values: dict[str, Any] = {}
    for name in ("high_water_mark", "last_equity"):
        values[name] = _stored_amount(path, name, payload.get(name))
    for name in ("high_water_mark_as_of", "last_as_of", "updated_at"):
        value = payload.get(name)
        if not isinstance(value, str) or not value.strip():
            raise StateFileError(path, f"field '{name}' must be a text timestamp (got {value!r})")
        values[name] = value
    if values["high_water_mark"] < values["last_equity"]:
        raise StateFileError(path, f"field 'high_water_mark' ({values['high_water_mark']!r}) is below field 'last_equity' "
                                   f"({values['last_equity']!r}); the mark is the highest equity seen")
    return HighWaterMark(**values)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _stored_amount(path: os.PathLike[str] | str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StateFileError(path, f"field '{name}' must be an amount in USD (got {str(value)[:80]!r})")
    try:
        amount = float(value)
    except OverflowError:
        raise StateFileError(path, f"field '{name}' is too large to be an amount in USD ({len(str(value))} digits)") from None
    if not math.isfinite(amount) or amount < 0:
        raise StateFileError(path, f"field '{name}' must be a finite amount >= 0 (got {value!r})")
    return amount


@dataclass(frozen=True)
class DrawdownStatus:
    """Outcome of one equity reading. `drawdown` is a fraction; None when the mark is unusable."""

    equity: float
    high_water_mark: float | None
    drawdown: float | None
    halted: bool
    engaged_now: bool
    reason: str


def _log_alert(subject: str, body: str) -> None:
    log.critical("%s: %s", subject, body)


class DrawdownMonitor:
    """Updates the high-water mark from the broker's account equity and halts on a drawdown.

    `alert(subject, body)` is called once when this monitor engages the halt (default: a
    CRITICAL log record); an alert that raises is logged and never undoes the halt.
    `durable=False` (backtests only): the mark and the equity log are written without waiting
    for the disk (the mark still replaced atomically); engaging the halt always waits.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        max_drawdown: float = 0.15,
        alert: Alert | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        by: str = "drawdown-monitor",
        durable: bool = True,
    ):
        if isinstance(max_drawdown, bool) or not isinstance(max_drawdown, (int, float)) or not 0 < max_drawdown <= 1:
            raise RecordError("drawdown monitor", "config", "max_drawdown", "must be a fraction in (0, 1]", max_drawdown)
        self.state_dir = paths.state_dir(state_dir)
        self.max_drawdown = float(max_drawdown)
        self.alert = alert or _log_alert
        self._clock = clock or utc_now
        self.by = by
        self.durable = durable
        self.store = HighWaterMarkStore(self.state_dir, durable=durable)
        self.kill_switch = KillSwitch(self.state_dir, clock=self._clock)

    def update(self, equity: float, as_of: dt.datetime | dt.date | str,
               stale_marks: dict[str, str] | None = None) -> DrawdownStatus:
        """Record one account-equity reading (USD) taken at `as_of`; halt at the drawdown limit.
        `stale_marks`: held symbols valued at a mark older than `as_of` (symbol -> session of
        their last bar), flagged in the reading."""
        stamp = _stamp(as_of)
        value = _equity(equity, stamp)
        if not self.state_dir.is_dir():
            # Never create a state folder by recording equity: a mistyped KOBE_STATE_DIR would
            # otherwise look like a fresh, un-halted account. Engaging creates it, halted.
            reason = f"state folder {self.state_dir} does not exist; halted until a person clears it (kobe halt clear)"
            return DrawdownStatus(value, None, None, True, self._halt(reason, value, None, None), reason)
        try:
            mark = self.store.read()
            version_of(self.store.equity_log_path)  # the log a deleted mark is checked against: regular too
        except StateFileError as exc:
            reason = (f"high-water mark unusable: {exc}; trading halted until a person repairs the file "
                      f"or rebases it (kobe halt clear --rebase-hwm --equity USD)")
            return DrawdownStatus(value, None, None, True, self._halt(reason, value, None, None), reason)
        now = iso_utc(self._clock())
        if mark is None or value > mark.high_water_mark:
            peak, peak_as_of = value, stamp
        else:
            peak, peak_as_of = mark.high_water_mark, mark.high_water_mark_as_of
        self.store.write(HighWaterMark(peak, peak_as_of, value, stamp, now))
        drawdown = (peak - value) / peak if peak > 0 else 0.0
        # 1e-12 absorbs float noise at exactly the limit: (100 - 85) / 100 must count as 15 %.
        if drawdown < self.max_drawdown - 1e-12:
            reason = f"drawdown {drawdown:.2%} from high-water mark {peak:,.2f} USD (limit {self.max_drawdown:.0%})"
            result = DrawdownStatus(value, peak, drawdown, self.kill_switch.status().halted, False, reason)
        else:
            reason = (f"drawdown halt: equity {value:,.2f} USD is {drawdown:.2%} below the high-water mark "
                      f"{peak:,.2f} USD of {peak_as_of} (limit {self.max_drawdown:.0%})")
            result = DrawdownStatus(value, peak, drawdown, True, self._halt(reason, value, peak, drawdown), reason)
        append_record(self.state_dir / EQUITY_LOG_NAME, {"as_of": stamp, "recorded_at": now, "equity": value,
                                                         "high_water_mark": peak, "drawdown": drawdown,
                                                         "halted": result.halted,
                                                         **({"stale_marks": stale_marks} if stale_marks else {})},
                      fsync=self.durable)
        return result

    def status(self) -> HighWaterMark | None:
        """The stored mark (raises `StateFileError` when it is unusable)."""
        return self.store.read()

    def rebase(self, equity: float, reason: str, by: str, as_of: dt.datetime | dt.date | str | None = None) -> HighWaterMark:
        """Set the high-water mark to `equity` (USD), e.g. when a person resumes trading after a
        drawdown halt; logged to the halt log with the mark it replaced. Also repairs a corrupt file."""
        now = iso_utc(self._clock())
        stamp = _stamp(as_of) if as_of is not None else now
        value = _equity(equity, stamp)
        if not isinstance(reason, str) or not reason.strip():
            raise RecordError("high-water mark", "rebase", "reason", "must be a non-empty text", reason)
        try:
            old = self.store.read()
            replaced: Any = old.high_water_mark if old else None
        except StateFileError as exc:
            replaced = f"unusable: {exc}"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        append_record(self.kill_switch.log_path, {"event": "rebase_high_water_mark", "at": now, "by": by,
                                                  "reason": reason.strip(), "from": replaced, "to": value})
        mark = HighWaterMark(value, stamp, value, stamp, now)
        self.store.write(mark)
        return mark

    def _halt(self, reason: str, equity: float, peak: float | None, drawdown: float | None) -> bool:
        """Engage the kill switch unless it is already engaged; alert when engaging. True if engaged now."""
        current = self.kill_switch.status()
        if current.halted and not current.fail_closed:
            log.warning("drawdown monitor: already halted; %s", reason)
            return False
        self.kill_switch.engage(reason, self.by)
        body = "\n".join([
            reason,
            f"equity: {equity:,.2f} USD",
            f"high-water mark: {'unknown' if peak is None else f'{peak:,.2f} USD'}",
            f"drawdown: {'unknown' if drawdown is None else f'{drawdown:.2%}'}",
            f"kill switch: {self.kill_switch.path} (clear with: kobe halt clear --reason TEXT)",
        ])
        try:
            subject = "drawdown limit" if drawdown is not None else "drawdown unknown"
            self.alert(f"KOBE trading halted: {subject}", body)
        except Exception:  # the halt stands even when the alert channel is down
            log.exception("drawdown alert could not be sent; the halt is engaged")
        return True


def read_equity_log(state_dir: str | os.PathLike[str] | None = None) -> "pd.DataFrame":
    """Every equity reading the monitor recorded (as_of, recorded_at, equity, high_water_mark,
    drawdown as a fraction, halted), oldest first: the data behind an equity/drawdown plot."""
    import pandas as pd

    columns = ["as_of", "recorded_at", "equity", "high_water_mark", "drawdown", "halted"]
    rows = list(iter_records(paths.state_dir(state_dir) / EQUITY_LOG_NAME))
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)


def _stamp(as_of: dt.datetime | dt.date | str) -> str:
    if isinstance(as_of, dt.datetime):
        return iso_utc(as_of)
    if isinstance(as_of, dt.date):
        return as_of.isoformat()
    if isinstance(as_of, str) and as_of.strip():
        return as_of.strip()
    raise RecordError("account equity", repr(as_of), "as_of", "must be a datetime, date or non-empty text", as_of)


def _equity(equity: Any, stamp: str) -> float:
    if isinstance(equity, bool) or not isinstance(equity, (int, float)) or not math.isfinite(equity) or equity < 0:
        raise RecordError("account equity", stamp, "equity", "must be a finite amount of USD >= 0", equity)
    return float(equity)

