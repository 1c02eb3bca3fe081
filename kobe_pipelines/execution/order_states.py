"""Each order's latest order-state event, kept in step with the append-only ledger table.

The ledger never updates or deletes a row, and SQLite hands out `seq` in commit order, so the
latest state of every order follows from the rows past the last `seq` read: each read applies
only those (one indexed range scan), and the cost of a read does not grow with the orders the
ledger has closed. A ledger file replaced by another (another inode, or a highest `seq` below the
one already read) is read again from its first row.
"""

from __future__ import annotations

import os
import sqlite3
from collections import defaultdict
from pathlib import Path


class LatestOrderStates:
    """Per broker: the client order ids whose latest order-state event is open, and those whose
    latest one is the write-ahead submission (approved, no broker answer yet)."""

    def __init__(self, state_events: tuple[str, ...]):
        self._events = state_events
        self._reset(None)

    def _reset(self, file_id: tuple[int, int] | None) -> None:
        self._file_id = file_id
        self._seq = 0
        self._broker_of: dict[str, str] = {}
        self._open: defaultdict[str, set[str]] = defaultdict(set)
        self._submitted: defaultdict[str, set[str]] = defaultdict(set)

    def refresh(self, con: sqlite3.Connection, path: Path) -> None:
        """Apply the rows committed since the last read; `con` is inside a read transaction."""
        stat = os.stat(path)
        top = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        if (stat.st_dev, stat.st_ino) != self._file_id or top < self._seq:
            self._reset((stat.st_dev, stat.st_ino))
        if top == self._seq:
            return
        rows = con.execute(f"SELECT client_order_id, broker, event, is_open FROM events WHERE seq > ? AND seq <= ? "
                           f"AND event IN ({', '.join('?' * len(self._events))}) ORDER BY seq",
                           (self._seq, top, *self._events)).fetchall()
        for coid, broker, event, is_open in rows:
            if coid is not None:
                self._apply(coid, broker, event, bool(is_open))
        self._seq = top

    def _apply(self, coid: str, broker: str, event: str, is_open: bool) -> None:
        previous = self._broker_of.get(coid)
        if previous is not None:
            self._open[previous].discard(coid)
            self._submitted[previous].discard(coid)
        self._broker_of[coid] = broker
        if is_open:
            self._open[broker].add(coid)
        if event == "submitted":
            self._submitted[broker].add(coid)

    def open_ids(self, broker: str) -> set[str]:
        return set(self._open.get(broker, ()))

    def submitted_ids(self, broker: str) -> set[str]:
        return set(self._submitted.get(broker, ()))
