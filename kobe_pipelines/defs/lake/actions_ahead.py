"""Corporate actions fetched ahead: while the quality worker checks a run's raw bars, the run's
own process has nothing else to do, so `raw_daily_bars` fetches the actions that
`corporate_actions` will ask for next, and `corporate_actions` takes them instead of fetching
again, when they are for the same run and the same dates.

A fetch ahead that fails is forgotten: `corporate_actions` then fetches itself and reports its
own error. Only the last fetch is held, and only until it is taken (or another run's replaces it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kobe_pipelines.defs.lake.sessions import staged_range

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ActionsWindow:
    """The dates of a corporate-actions fetch (exchange dates, YYYY-MM-DD, both included)."""

    start: str
    end: str


@dataclass(frozen=True)
class _Fetched:
    run_id: str
    window: ActionsWindow
    splits: pd.DataFrame
    dividends: pd.DataFrame


_held: _Fetched | None = None


def actions_window(store, staged_labels: list[str], held: dt.date | None) -> ActionsWindow | None:
    """The actions a freeze of the batches `staged_labels` into a lake whose last session is
    `held` needs: from the current version's last date minus the lake's look-back
    (late-announced actions are caught again; from the first staged session when the lake is
    empty) through the last staged session. None when nothing is staged and the lake is empty."""
    staged = staged_range(staged_labels)
    if staged is None and held is None:
        return None
    start = store.actions_fetch_start(str(staged.first) if staged else str(held))
    return ActionsWindow(start, str(staged.last if staged else held))


def fetch(provider, window: ActionsWindow) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (splits, dividends) of `window` from `provider`."""
    return provider.splits(window.start, window.end), provider.dividends(window.start, window.end)


def fetch_ahead(run_id: str, provider, window: ActionsWindow | None) -> None:
    """Fetch the splits and dividends of `window` from `provider` for the run `run_id` and hold
    them; a fetch that raises holds nothing."""
    global _held
    _held = None
    if window is None:
        return
    try:
        _held = _Fetched(run_id, window, *fetch(provider, window))
    except Exception:  # noqa: BLE001 - corporate_actions fetches again and reports its own error
        _held = None


def take(run_id: str, window: ActionsWindow) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The (splits, dividends) fetched ahead for this run and window, if any (then no longer held)."""
    global _held
    held, _held = _held, None
    if held is None or held.run_id != run_id or held.window != window:
        return None
    return held.splits, held.dividends
