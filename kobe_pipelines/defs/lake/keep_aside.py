"""The corporate actions a freeze applies: those of the symbols and sessions it holds.

Any range of sessions can be frozen: a split of a symbol that lists later, or a dividend after
the last session held, is kept aside (counted and shown) rather than stopping the freeze as an
action of an unknown symbol. No Dagster here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class HeldScope:
    """What the freeze will hold: its symbols and its first and last session."""

    symbols: frozenset[str]
    first: dt.date
    last: dt.date


@dataclass(frozen=True)
class ActionsInScope:
    splits: pd.DataFrame
    dividends: pd.DataFrame
    kept_aside: pd.DataFrame  # kind, symbol, date, reason

    @property
    def kept_aside_count(self) -> int:
        return len(self.kept_aside)


def actions_in_scope(splits: pd.DataFrame, dividends: pd.DataFrame, scope: HeldScope) -> ActionsInScope:
    """Split the actions into those the freeze applies and those it keeps aside, with the reason.
    A dividend's date may be a weekend (it applies on the next session): its reported date is
    compared with the sessions held, counting the two days before the first one."""
    kept_s, aside_s = _partition(splits, "execution_date", scope)
    kept_d, aside_d = _partition(dividends, "ex_dividend_date", scope)
    aside = pd.concat([aside_s.assign(kind="split"), aside_d.assign(kind="dividend")], ignore_index=True)
    return ActionsInScope(kept_s, kept_d, aside[["kind", "symbol", "date", "reason"]])


def _partition(frame: pd.DataFrame, column: str, scope: HeldScope) -> tuple[pd.DataFrame, pd.DataFrame]:
    dates = pd.to_datetime(frame[column])
    symbols = frame["symbol"].astype(str)
    unknown = ~symbols.isin(scope.symbols)
    after = dates > pd.Timestamp(scope.last)
    before = dates < pd.Timestamp(scope.first) - pd.Timedelta(days=2)
    reason = pd.Series("", index=frame.index)
    reason[before] = f"before the first session held ({scope.first})"
    reason[after] = f"after the last session held ({scope.last})"
    reason[unknown] = "no bars of the symbol in this freeze"
    aside = unknown | after | before
    kept = frame.loc[~aside].reset_index(drop=True)
    out = pd.DataFrame({"symbol": symbols[aside], "date": dates[aside], "reason": reason[aside]}).reset_index(drop=True)
    return kept, out
