"""Which sessions a refreeze ingests, and how the sessions a lake holds read in the UI.

A refreeze run ingests one range of XNYS sessions (America/New_York). Unless the run names it,
the range is every session the lake lacks: from the session after the lake's last one (or the
history start when the lake is empty) through the last completed session. No Dagster here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

STAGED_LABEL_SEPARATOR = "_"  # a staged batch is labelled "<first>_<last>"


@dataclass(frozen=True)
class SessionRange:
    """The sessions [first, last] of one refreeze (exchange dates)."""

    first: dt.date
    last: dt.date

    @property
    def label(self) -> str:
        """The label of the staged batch of these sessions."""
        return f"{self.first}{STAGED_LABEL_SEPARATOR}{self.last}"

    @classmethod
    def from_label(cls, label: str) -> SessionRange:
        first, last = label.split(STAGED_LABEL_SEPARATOR)
        return cls(dt.date.fromisoformat(first), dt.date.fromisoformat(last))

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}..{self.last}"


def sessions_to_ingest(
    lake_last: dt.date | None, history_start: str, first: str | None = None, last: str | None = None,
    now: dt.datetime | None = None,
) -> SessionRange | None:
    """The range a refreeze ingests: `first`..`last` when given, else from the session after
    `lake_last` (or `history_start` for an empty lake) through the last completed session at
    `now`. None when there is no session in it (the lake is up to date)."""
    from kobe_pipelines import market_calendar

    end = dt.date.fromisoformat(last) if last else market_calendar.last_completed_session(now).date()
    if first:
        start = dt.date.fromisoformat(first)
    elif lake_last is not None:
        start = lake_last + dt.timedelta(days=1)
    else:
        start = dt.date.fromisoformat(history_start)
    sessions = market_calendar.sessions(start, end)
    if len(sessions) == 0:
        return None
    return SessionRange(sessions[0].date(), sessions[-1].date())


def staged_range(labels: list[str]) -> SessionRange | None:
    """The sessions the staged batches span (None when nothing is staged)."""
    ranges = [SessionRange.from_label(label) for label in labels]
    if not ranges:
        return None
    return SessionRange(min(r.first for r in ranges), max(r.last for r in ranges))


@dataclass(frozen=True)
class HeldSessions:
    """The sessions a lake version holds, as runs of consecutive XNYS sessions."""

    runs: tuple[tuple[dt.date, dt.date, int], ...]  # (first, last, sessions) of each run
    missing: int  # XNYS sessions between the first and the last that the lake lacks

    @property
    def count(self) -> int:
        return sum(run[2] for run in self.runs)

    def markdown(self, shown: int = 12) -> str:
        """One line per run (the first and last `shown // 2` when there are more)."""
        if not self.runs:
            return "_no sessions_"
        lines = [f"- {a}..{b}: {n:,} sessions" if a != b else f"- {a}: 1 session" for a, b, n in self.runs]
        if len(lines) > shown:
            lines = [*lines[: shown // 2], f"- ... {len(lines) - shown} more runs ...", *lines[-(shown // 2):]]
        gaps = "none" if not self.missing else f"{self.missing:,}"
        return f"**{self.count:,} sessions**, missing between them: {gaps}\n\n" + "\n".join(lines)


def held_sessions(dates: list[dt.date]) -> HeldSessions:
    """Runs of consecutive XNYS sessions in `dates` (the distinct dates of a version's bars)."""
    from kobe_pipelines import market_calendar

    if not dates:
        return HeldSessions((), 0)
    days = sorted(set(dates))
    calendar = [d.date() for d in market_calendar.sessions(days[0], days[-1])]
    position = {day: i for i, day in enumerate(calendar)}
    runs: list[tuple[dt.date, dt.date, int]] = []
    for day in days:
        if runs and position.get(day, -2) == position.get(runs[-1][1], -10) + 1:
            runs[-1] = (runs[-1][0], day, runs[-1][2] + 1)
        else:
            runs.append((day, day, 1))
    return HeldSessions(tuple(runs), len(calendar) - sum(1 for d in days if d in position))
