"""Blocking data-quality checks of the lake assets (Great Expectations via data.quality)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    import pandas as pd

    from kobe_pipelines.data.quality import QualityReport
    from kobe_pipelines.lake.publish import Candidate

RAW_BARS_CHECK = "check_raw_bars_quality"
SPLIT_JUMPS_CHECK = "check_split_adjusted_no_unexplained_jump"
TOTAL_JUMPS_CHECK = "check_total_return_no_unexplained_jump"

raw_bars_check_specs = [
    dg.AssetCheckSpec(
        RAW_BARS_CHECK,
        asset="raw_daily_bars",
        blocking=True,
        description="prices > 0, low <= open/close <= high, volume >= 0, unique (symbol, date), no future dates",
    )
]
candidate_check_specs = [
    dg.AssetCheckSpec(
        SPLIT_JUMPS_CHECK, asset="lake_candidate", blocking=True,
        description="split-adjusted close-to-close return on each split/ex-date the candidate adds within +-0.4 log",
    ),
    dg.AssetCheckSpec(
        TOTAL_JUMPS_CHECK, asset="lake_candidate", blocking=True,
        description="total-return-adjusted close-to-close return on each split/ex-date the candidate adds within +-0.4 log",
    ),
]


def check_result(name: str, asset: str, report: QualityReport) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset,
        passed=report.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=report.summary(),
        metadata={
            "rows_checked": report.rows,
            "expectations": len(report.outcomes),
            "failed_expectations": dg.MetadataValue.json(
                [
                    {"expectation": o.expectation, "column": o.column, "unexpected": o.unexpected_count, "examples": o.examples}
                    for o in report.failures
                ]
            ),
        },
    )


class UncheckedEventError(LookupError):
    """An event the candidate adds on a session its symbol traded, without a return that the
    prepare's jump check judged."""


def added_event_returns(candidate: Candidate, added: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per adjusted view ("split", "total"): symbol, event_date and the close-to-close log return
    on each session of `added` (the candidate's events its base version lacks) on which the symbol
    traded, as the prepare's own jump check computed and judged them (`Candidate.event_jumps`).
    Raises `UncheckedEventError` naming the first such session the prepare did not judge: the
    checks fail closed rather than pass an event nobody looked at."""
    import pandas as pd

    columns = ["symbol", "event_date"]
    jumps = candidate.event_jumps
    if jumps is None:
        jumps = pd.DataFrame(columns=[*columns, "split_log_return", "total_log_return"])
    traded = added.loc[pd.to_datetime(added["ex_date"]) == pd.to_datetime(added["event_date"]), columns] \
        if len(added) else added.reindex(columns=columns)
    sessions = traded.drop_duplicates().assign(event_date=lambda f: pd.to_datetime(f["event_date"]))
    judged = jumps.assign(event_date=pd.to_datetime(jumps["event_date"]))
    found = sessions.merge(judged, on=columns, how="left", indicator=True)
    missing = found.loc[found["_merge"] == "left_only"]
    if len(missing):
        first = missing.iloc[0]
        raise UncheckedEventError(
            f"event {first['symbol']} {first['event_date'].date()}: the candidate adds it, but the prepare's jump "
            f"check did not judge its session ({len(missing)} such session(s))"
        )
    found = found.sort_values(columns, kind="stable").reset_index(drop=True)
    return {view: found[columns].assign(log_return=found[f"{view}_log_return"].astype(float))
            for view in ("split", "total")}
