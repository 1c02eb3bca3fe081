"""Blocking data-quality checks of the lake assets (Great Expectations via data.quality)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from kobe_pipelines.data.quality import QualityReport

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
