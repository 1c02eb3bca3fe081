"""Data-quality expectations on bars, run with Great Expectations 1.x.

Plain domain code: the Dagster asset checks (kobe_pipelines.defs.lake.checks) turn these
reports into blocking `AssetCheckResult`s. The expectations state the rules of `data.rules`,
which every freeze also enforces itself (`validation`, `event_checks`), so the Dagster checks
and `kobe lake freeze` refuse the same bars. Raw-bar expectations: a ticker symbol (trimmed),
prices > 0, low <= open, close <= high, a whole volume in [0, 1e12], unique (symbol, date), XNYS
sessions only, no future dates. Adjusted-bar expectation: no unexplained jump on a split or
ex-date (the adjusted close-to-close log return there stays within +-`max_abs_log_return`, 0.4
by default, about -33%/+49%).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kobe_pipelines import market_calendar
from kobe_pipelines.data import rules

DEFAULT_MAX_ABS_LOG_RETURN = rules.MAX_ABS_EVENT_LOG_RETURN


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str
    success: bool
    unexpected_count: int
    examples: list[Any]


@dataclass(frozen=True)
class QualityReport:
    suite: str
    rows: int
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success)

    def summary(self) -> str:
        if self.success:
            return f"{self.suite}: {len(self.outcomes)} expectations passed on {self.rows} rows"
        return "; ".join(
            f"{o.expectation}({o.column}): {o.unexpected_count} unexpected, e.g. {o.examples[:3]}" for o in self.failures
        )


def _gx():
    # No usage statistics leave this machine, and no progress bars in logs.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    return gx, gxe


def _validate(suite_name: str, frame: pd.DataFrame, expectations: list[Any]) -> QualityReport:
    gx, _ = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas(f"{suite_name}_source")
    batch = (
        source.add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name=suite_name)
    for expectation in expectations:
        suite.add_expectation(expectation)
    keys = [c for c in ("symbol", "date", "event_date") if c in frame.columns]
    result = batch.validate(suite, result_format={"result_format": "SUMMARY", "unexpected_index_column_names": keys})
    outcomes = []
    for item in result.results:
        config = item.expectation_config
        kwargs = config.kwargs
        column = kwargs.get("column") or ",".join(
            str(kwargs.get(k)) for k in ("column_A", "column_B", "column_list") if kwargs.get(k) is not None
        )
        outcomes.append(
            ExpectationOutcome(
                expectation=config.type,
                column=column,
                success=bool(item.success),
                unexpected_count=int(item.result.get("unexpected_count") or (0 if item.success else 1)),
                examples=[_plain(v) for v in (item.result.get("partial_unexpected_index_list") or item.result.get("partial_unexpected_list") or [])[:5]]
                or ([_plain(item.result.get("observed_value"))] if not item.success else []),
            )
        )
    return QualityReport(suite=suite_name, rows=len(frame), outcomes=tuple(outcomes))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (pd.Timestamp, dt.date)):
        return str(value)[:10]
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_raw_bars(bars: pd.DataFrame, as_of: dt.date) -> QualityReport:
    """Expectations on raw bars; `as_of` is the exchange date after which a bar is 'future'.
    Symbols are judged trimmed, as the lake stores them."""
    _, gxe = _gx()
    bars = bars.assign(symbol=bars["symbol"].astype(str).str.strip())
    dates = pd.to_datetime(bars["date"])
    sessions = market_calendar.sessions(dates.min(), dates.max()) if len(bars) and dates.notna().any() else pd.DatetimeIndex([])
    # the fractional part of each volume, which must be 0 (GE has no whole-number expectation)
    frame = bars.assign(volume_fraction=bars["volume"] - np.floor(bars["volume"]))
    expectations: list[Any] = [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in bars.columns]
    expectations += [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True) for c in ("open", "high", "low", "close")]
    expectations += [
        gxe.ExpectColumnValuesToMatchRegex(column="symbol", regex=rf"^(?:{rules.TICKER_PATTERN})\Z"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="symbol", min_value=1, max_value=rules.MAX_SYMBOL_LENGTH),
        gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0, max_value=rules.MAX_VOLUME),
        gxe.ExpectColumnValuesToBeBetween(column="volume_fraction", min_value=0, max_value=0),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="open", column_B="low", or_equal=True),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="close", column_B="low", or_equal=True),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="close", or_equal=True),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="open", or_equal=True),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["symbol", "date"]),
        gxe.ExpectColumnValuesToBeInSet(column="date", value_set=list(sessions)),
        gxe.ExpectColumnValuesToBeBetween(column="date", max_value=pd.Timestamp(as_of)),
    ]
    return _validate("raw_bars", frame, expectations)


def check_adjusted_jumps(returns: pd.DataFrame, view: str, max_abs_log_return: float = DEFAULT_MAX_ABS_LOG_RETURN) -> QualityReport:
    """No unexplained jump: on every event date the adjusted log return stays within the band."""
    _, gxe = _gx()
    expectation = gxe.ExpectColumnValuesToBeBetween(
        column="log_return", min_value=-max_abs_log_return, max_value=max_abs_log_return
    )
    report = _validate(f"adjusted_jumps_{view}", returns[["symbol", "event_date", "log_return"]], [expectation])
    if report.success:
        return report
    worst = returns.loc[returns["log_return"].abs() > max_abs_log_return].head(5)
    examples = [f"{r.symbol} {str(r.event_date)[:10]} log return {r.log_return:+.3f}" for r in worst.itertuples()]
    failed = report.outcomes[0]
    return QualityReport(
        report.suite, report.rows, (ExpectationOutcome(failed.expectation, failed.column, False, failed.unexpected_count, examples),)
    )
