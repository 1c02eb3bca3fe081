"""The gate's audit log: `state/risk_audit.jsonl`, one JSON line per decision.

Each line: `decision_id`, `decided_at` (ISO 8601 UTC), `approved`, `intent` (typed: a field that
failed validation is null there and its raw value, as `repr`, is in `invalid`), `checks` (name,
passed, reason for every check), `failed` (names), and `context` (equity, buying power, the
symbol's position and last price as the gate saw them).

Durability. Every record reaches the operating system with one `write` before the gate returns
its decision, so a crash of the process loses nothing it was told. What `fsync` adds is survival
of an operating-system crash or power loss:
- `fsync=True` (the default): one fsync per `append`, so a returned decision is on disk.
  About 0.2 ms per decision on this machine's disk, i.e. at most ~5,000 decisions/s.
- `append_many` (the gate's `decide_batch`): all records of a batch in one write and one fsync,
  still on disk before any decision of the batch is returned; the fsync cost is shared.
- `fsync=False`: no fsync at all unless `sync()` is called; an OS crash can lose records
  written since the last sync. For simulations, backtests and tests, not for live trading.

Reading. `read_audit_log` returns a DataFrame; `duckdb_source(path)` is a `read_json(...)`
expression with explicit column types for DuckDB (auto-detection would coerce a rejected
qty of 1.5 to 2). A torn last line (crash mid-append) is skipped with a warning; the next
writer moves it aside (see `jsonl`).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kobe_pipelines import paths
from kobe_pipelines.fsutil import fsync_dir
from kobe_pipelines.regular_files import open_regular
from kobe_pipelines.orders import SignalLineage
from kobe_pipelines.orders.validation import ParsedIntent
from kobe_pipelines.risk.jsonl import iter_records, repair_torn_tail, write_all
from kobe_pipelines.risk.types import Decision

if TYPE_CHECKING:
    import pandas as pd

AUDIT_LOG_NAME = "risk_audit.jsonl"
INTENT_FIELDS = ("client_order_id", "symbol", "side", "qty", "entry", "stop", "take_profit", "order_type",
                 "strategy", "strategy_version", "trading_date", "lineage")
_TEXT_FIELDS = ("strategy", "strategy_version", "trading_date")

DUCKDB_COLUMNS = {
    "decision_id": "VARCHAR",
    "decided_at": "TIMESTAMPTZ",
    "approved": "BOOLEAN",
    "intent": "STRUCT(client_order_id VARCHAR, symbol VARCHAR, side VARCHAR, qty BIGINT, entry DOUBLE, stop DOUBLE, "
              "take_profit DOUBLE, order_type VARCHAR, strategy VARCHAR, strategy_version VARCHAR, trading_date VARCHAR, "
              "lineage STRUCT(model VARCHAR, model_version VARCHAR, lake_version VARCHAR, lake_hash VARCHAR, "
              "signals_hash VARCHAR, signal_date VARCHAR, score DOUBLE))",
    "invalid": "JSON",
    "checks": "STRUCT(name VARCHAR, passed BOOLEAN, reason VARCHAR)[]",
    "failed": "VARCHAR[]",
    "context": "STRUCT(equity DOUBLE, buying_power DOUBLE, position_qty BIGINT, last_price DOUBLE, reducing BOOLEAN, "
               "net_position_qty BIGINT, open_entry_qty BIGINT, retry_of VARCHAR)",
}


def audit_path(state_dir: str | os.PathLike[str] | None = None) -> Path:
    return paths.state_dir(state_dir) / AUDIT_LOG_NAME


class AuditLog:
    """Appends encoded decisions to the audit log; see the module docstring for durability.

    The file is opened on first use, never created together with a missing state folder
    (the append fails and the gate rejects: no decision goes unlogged).
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self._fd: int | None = None

    def append(self, line: bytes) -> None:
        fd = self._open()
        write_all(fd, line)
        if self.fsync:
            os.fsync(fd)

    def append_many(self, lines: list[bytes]) -> None:
        """One write and one fsync for the whole batch (unless `fsync=False`)."""
        fd = self._open()
        write_all(fd, b"".join(lines))
        if self.fsync:
            os.fsync(fd)

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        """Close the file (with `fsync=True` every record is already on disk)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _open(self) -> int:
        if self._fd is None:
            if not self.path.parent.is_dir():
                raise FileNotFoundError(f"state folder {self.path.parent} does not exist")
            repair_torn_tail(self.path)
            created = not self.path.exists()
            self._fd = open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # a FIFO or link: refused
            if created and self.fsync:
                fsync_dir(self.path.parent)
        return self._fd


# One encoder for all records: json.dumps with options builds a new encoder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=repr)
_str = encode_basestring_ascii  # a Python str -> a quoted JSON string (C)


def encode_record(decision: Decision, parsed: ParsedIntent, context: dict[str, Any], raw: Any = None) -> bytes:
    """One audit line for `decision` (typed intent values from `parsed`; `raw`: what the gate was
    handed when it was not an OrderIntent)."""
    intent = decision.intent
    invalid: dict[str, str] = {}
    if parsed.problems.get("intent"):
        typed: dict[str, Any] = dict.fromkeys(INTENT_FIELDS)
        invalid["intent"] = repr(raw)[:500]
    else:
        problems = parsed.problems
        typed = {
            "client_order_id": parsed.client_order_id,
            "symbol": parsed.symbol,
            "side": parsed.side.value if parsed.side is not None else None,
            "qty": parsed.qty,
            "entry": parsed.entry,
            "stop": parsed.stop,
            "take_profit": parsed.take_profit,
            "order_type": parsed.order_type.value if parsed.order_type is not None else None,
        }
        for name in problems:
            invalid[name] = repr(getattr(intent, name, None))[:200]
        for name in _TEXT_FIELDS:
            value = getattr(intent, name)
            if isinstance(value, str):
                typed[name] = value
            else:
                typed[name] = None
                invalid[name] = repr(value)[:200]
        lineage = intent.lineage
        typed["lineage"] = lineage.to_dict() if isinstance(lineage, SignalLineage) else None
    # Assembled by hand around the C string encoder: json.dumps of the whole record took ~14 us,
    # a fifth of a decision; the line is the same JSON (tests parse every line back).
    checks = decision.checks
    parts = [
        '{"decision_id":', _str(decision.decision_id),
        ',"decided_at":', _str(decision.decided_at.isoformat()),
        ',"approved":', "true" if decision.approved else "false",
        ',"intent":', _ENCODER.encode(typed),
        ',"invalid":', _ENCODER.encode(invalid) if invalid else "null",
        ',"checks":[',
        ",".join(f'{{"name":{_str(c.name)},"passed":{"true" if c.passed else "false"},"reason":{_str(c.reason)}}}'
                 for c in checks),
        '],"failed":[', ",".join(_str(c.name) for c in checks if not c.passed),
        '],"context":', _ENCODER.encode(context), "}\n",
    ]
    return "".join(parts).encode("utf-8")


def finite_or_none(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


_FRAME_COLUMNS = ["decided_at", "decision_id", "approved", "client_order_id", "symbol", "side", "qty", "entry", "stop",
                  "take_profit", "order_type", "strategy", "lineage", "failed", "reason", "invalid", "checks", "context"]


def read_audit_log(state_dir: str | os.PathLike[str] | None = None, *, path: str | os.PathLike[str] | None = None,
                   limit: int | None = None) -> "pd.DataFrame":
    """Decisions as a DataFrame, oldest first (`limit`: only the last N). `decided_at` is UTC;
    `failed` lists failed check names; `reason` joins their reasons; `checks` keeps them all."""
    import pandas as pd  # here, not at import: the gate itself never needs pandas

    file = Path(path) if path is not None else audit_path(state_dir)
    rows = [_row(r) for r in iter_records(file)]
    if limit is not None:
        rows = rows[-limit:] if limit > 0 else []
    frame = pd.DataFrame(rows, columns=_FRAME_COLUMNS)
    frame["decided_at"] = pd.to_datetime(frame["decided_at"], utc=True, format="ISO8601")
    frame["approved"] = frame["approved"].astype(bool)
    return frame


def _row(record: dict[str, Any]) -> dict[str, Any]:
    intent = record.get("intent") or {}
    checks = record.get("checks") or []
    failed = [c for c in checks if not c.get("passed")]
    row = {name: intent.get(name) for name in ("client_order_id", "symbol", "side", "qty", "entry", "stop",
                                                "take_profit", "order_type", "strategy", "lineage")}
    row.update(
        decided_at=record.get("decided_at"),
        decision_id=record.get("decision_id"),
        approved=record.get("approved") is True,
        failed=",".join(c.get("name", "?") for c in failed),
        reason="approved" if not failed else "; ".join(f"{c.get('name')}: {c.get('reason')}" for c in failed),
        invalid=record.get("invalid"),
        checks=checks,
        context=record.get("context"),
    )
    return row


def duckdb_source(path: str | os.PathLike[str]) -> str:
    """A DuckDB table expression over the audit log, e.g.
    `duckdb.sql(f"SELECT count(*) FROM {duckdb_source(p)} WHERE NOT approved")`."""
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in DUCKDB_COLUMNS.items())
    quoted = str(path).replace("'", "''")
    # ignore_errors turns a torn line into a row of NULLs; the filter drops it.
    return (f"(SELECT * FROM read_json('{quoted}', format='newline_delimited', columns={{{columns}}}, "
            f"ignore_errors=true) WHERE decision_id IS NOT NULL)")

