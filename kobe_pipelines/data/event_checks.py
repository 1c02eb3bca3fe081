"""The corporate-action rules of `rules`, judged on an adjustment before a freeze stores it.

Both read the raw closes each applied event recorded (`adjustments.Adjustment.events`: the last
bar before its session, `close_prev`, and the first on or after it, `close_ex`) and the factor
intervals computed from them, so they cost a few array operations per event, never a read of
the bars.

- `repeated_splits`: two splits of one symbol within `rules.REPEATED_SPLIT_SESSIONS` sessions,
  of which exactly one moves the raw prices by its ratio, are one split listed twice (Polygon
  listed SHOP's 10:1 split twice, a week apart). Applying both would divide every earlier price
  once too often. Refused, naming the listing that the raw prices do not show.
- `event_jumps`: the close-to-close log return on each applied event's session (when the symbol
  traded on it) in the raw, split-adjusted and total-return views. Beyond
  `rules.MAX_ABS_EVENT_LOG_RETURN` in an adjusted view the event does not explain the move (a
  wrong ratio, a wrong date, a dividend in another basis): refused, naming the event.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kobe_pipelines import market_calendar
from kobe_pipelines.data import rules
from kobe_pipelines.data.adjustments import Adjustment, apply_factors
from kobe_pipelines.data.validation import ActionValidationError, record_name


class UnexplainedJumpError(ActionValidationError):
    """An applied split or dividend leaves a jump in the adjusted prices on its session."""


class RepeatedSplitError(ActionValidationError):
    """Two splits of one symbol a few sessions apart, of which the raw prices show only one."""


def check_adjustment(adjustment: Adjustment, max_abs_log_return: float = rules.MAX_ABS_EVENT_LOG_RETURN) -> pd.DataFrame:
    """Raise `RepeatedSplitError` or `UnexplainedJumpError` for the first offending event (by
    symbol and date) of `adjustment`; when every event passes, return the returns it judged
    (`event_jumps`), which a caller may report."""
    repeated_splits(adjustment, max_abs_log_return)
    jumps = event_jumps(adjustment)
    bad = jumps.loc[(jumps[["split_log_return", "total_log_return"]].abs() > max_abs_log_return).any(axis=1)]
    if bad.empty:
        return jumps
    row = bad.iloc[0]
    view, value = (("split-adjusted", row["split_log_return"]) if abs(row["split_log_return"]) > max_abs_log_return
                   else ("total-return", row["total_log_return"]))
    kind, field = ("split", "split_to") if row["has_split"] else ("dividend", "cash_amount")
    raise UnexplainedJumpError(
        kind, record_name(row["symbol"], row["event_date"]), field,
        f"leaves an unexplained jump: the {view} close-to-close log return on its session is {value:+.3f} "
        f"(allowed +-{max_abs_log_return}; raw close {row['close_prev']:.6g} on {row['prev_date'].date()} -> "
        f"{row['close_ex']:.6g}, raw log return {row['raw_log_return']:+.3f}): check the amount, the ratio and the date",
        count=len(bad), total=len(jumps),
    )


def event_jumps(adjustment: Adjustment) -> pd.DataFrame:
    """One row per applied event session on which the symbol traded (the first bar on or after
    the session is on it): symbol, event_date, has_split, prev_date, close_prev, close_ex and the
    raw, split-adjusted and total-return close-to-close log returns, sorted by symbol and date."""
    events = adjustment.events
    columns = ["symbol", "event_date", "has_split", "prev_date", "close_prev", "close_ex",
               "raw_log_return", "split_log_return", "total_log_return"]
    if events.empty:
        return pd.DataFrame(columns=columns)
    # events come sorted by (symbol, event_date, kind): each session is a run of rows
    symbols = events["symbol"].to_numpy(dtype=object)
    days = events["event_date"].to_numpy(dtype="datetime64[ns]")
    codes = pd.factorize(symbols)[0]
    starts = np.flatnonzero(np.concatenate(([True], (codes[1:] != codes[:-1]) | (days[1:] != days[:-1]))))
    has_split = np.logical_or.reduceat((events["kind"] == "split").to_numpy(), starts)
    on_session = events["ex_date"].to_numpy(dtype="datetime64[ns]")[starts] == days[starts]
    first = starts[on_session]
    sessions = pd.DataFrame({
        "symbol": symbols[first], "event_date": days[first], "has_split": has_split[on_session],
        "prev_date": events["prev_date"].to_numpy(dtype="datetime64[ns]")[first],
        "close_prev": events["close_prev"].to_numpy(dtype=np.float64)[first],
        "close_ex": events["close_ex"].to_numpy(dtype=np.float64)[first],
    })
    n = len(sessions)
    if n == 0:
        return pd.DataFrame(columns=columns)
    closes = np.concatenate([sessions["close_prev"].to_numpy(), sessions["close_ex"].to_numpy()])
    bars = pd.DataFrame({
        "symbol": np.concatenate([sessions["symbol"].to_numpy(dtype=object)] * 2),
        "date": np.concatenate([sessions["prev_date"].to_numpy(dtype="datetime64[ns]"),
                                sessions["event_date"].to_numpy(dtype="datetime64[ns]")]),
        "open": closes, "high": closes, "low": closes, "close": closes, "volume": np.zeros(2 * n),
    })
    out = sessions.assign(raw_log_return=np.log(sessions["close_ex"].to_numpy() / sessions["close_prev"].to_numpy()))
    for view in ("split", "total"):
        adjusted = np.log(apply_factors(bars, adjustment.factors, view)["close"].to_numpy())
        out[f"{view}_log_return"] = adjusted[n:] - adjusted[:n]
    return out[columns]


def repeated_splits(adjustment: Adjustment, max_abs_log_return: float = rules.MAX_ABS_EVENT_LOG_RETURN) -> None:
    """Raise `RepeatedSplitError` for the first pair (by symbol and date) of splits of one symbol
    within `rules.REPEATED_SPLIT_SESSIONS` sessions of which exactly one is shown by the raw
    prices: its raw close-to-close log return over the session lies within
    `max_abs_log_return` of the split's own log ratio."""
    events = adjustment.events
    splits = events.loc[events["kind"] == "split"].sort_values(["symbol", "event_date"], kind="stable")
    if len(splits) < 2:
        return
    symbols = splits["symbol"].to_numpy(dtype=object)
    ordinal = _session_ordinals(splits["event_date"].to_numpy(dtype="datetime64[ns]"))
    ratio = splits["split_from"].to_numpy() / splits["split_to"].to_numpy()  # the price multiplier
    raw = np.log(splits["close_ex"].to_numpy() / splits["close_prev"].to_numpy())
    shown = np.abs(raw - np.log(ratio)) <= max_abs_log_return
    pair = (symbols[1:] == symbols[:-1]) & (ordinal[1:] - ordinal[:-1] <= rules.REPEATED_SPLIT_SESSIONS) \
        & (shown[1:] != shown[:-1])
    if not pair.any():
        return
    first = int(np.flatnonzero(pair)[0])
    seen, unseen = (first, first + 1) if shown[first] else (first + 1, first)
    rows = splits.iloc[[seen, unseen]]
    gap = int(abs(ordinal[first + 1] - ordinal[first]))

    def ratio_text(i: int) -> str:
        return f"{splits['split_from'].iloc[i]:g}:{splits['split_to'].iloc[i]:g}"

    raise RepeatedSplitError(
        "split", record_name(symbols[unseen], rows["event_date"].iloc[1]), "execution_date",
        f"is a second split ({ratio_text(unseen)}) of {symbols[unseen]} {gap} session(s) from its "
        f"{ratio_text(seen)} split of {rows['event_date'].iloc[0].date()}, but the raw prices move only at that one "
        f"(raw log return {raw[unseen]:+.3f} on this session): the same split listed twice? Remove one of them",
        count=int(pair.sum()), total=len(splits),
    )


def _session_ordinals(dates: np.ndarray) -> np.ndarray:
    """Each date's position among the XNYS sessions (a non-session: the next session's)."""
    sessions = market_calendar.xnys().sessions.to_numpy(dtype="datetime64[ns]")
    return np.searchsorted(sessions, dates, side="left")
