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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kobe_pipelines import market_calendar
from kobe_pipelines.data import rules, schema

if TYPE_CHECKING:
    import pyarrow as pa

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
    from great_expectations.execution_engine import pandas_execution_engine

    # GE fingerprints (hashes) every frame under this many bytes as a marker of its batch; these
    # checks never read the marker, and hashing a backfill's bars costs a third of its check
    pandas_execution_engine.HASH_THRESHOLD = 0
    return gx, gxe


def import_great_expectations() -> None:
    """Import Great Expectations now (it is imported on first use otherwise), e.g. in a thread
    while the bars to check are fetched."""
    _gx()


def _run_suite(suite_name: str, frame: pd.DataFrame, expectations: list[Any], *, keys: list[str] | None = None,
               parameters: dict[str, Any] | None = None, every_row: bool = False) -> list[Any]:
    """GE's results of `expectations` on `frame`. A ValidationDefinition loads (and fingerprints)
    the frame once; value sets that must keep their type (dates) come as `parameters` at run
    time, since a stored suite holds its values as JSON. `keys` name the columns each unexpected
    row is reported by (its index when None); `every_row` lists every unexpected row, not 20."""
    gx, _ = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batches = context.data_sources.add_pandas(f"{suite_name}_source").add_dataframe_asset(suite_name)
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=expectations))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite_name, data=batches.add_batch_definition_whole_dataframe("whole"), suite=suite)
    )
    result_format: dict[str, Any] = {"result_format": "COMPLETE" if every_row else "SUMMARY"}
    if keys:
        result_format["unexpected_index_column_names"] = keys
    result = validation.run(batch_parameters={"dataframe": frame}, expectation_parameters=parameters,
                            result_format=result_format)
    return list(result.results)


def _column(config: Any) -> str:
    kwargs = config.kwargs
    return kwargs.get("column") or ",".join(
        str(kwargs.get(k)) for k in ("column_A", "column_B", "column_list") if kwargs.get(k) is not None
    )


def _outcome(item: Any) -> ExpectationOutcome:
    """One GE result as an outcome: unexpected rows counted, the first five named by their keys."""
    examples = item.result.get("partial_unexpected_index_list") or item.result.get("partial_unexpected_list") or []
    return ExpectationOutcome(
        expectation=item.expectation_config.type,
        column=_column(item.expectation_config),
        success=bool(item.success),
        unexpected_count=int(item.result.get("unexpected_count") or (0 if item.success else 1)),
        examples=[_plain(v) for v in examples[:5]] or ([_plain(item.result.get("observed_value"))] if not item.success else []),
    )


def _validate(suite_name: str, frame: pd.DataFrame, expectations: list[Any]) -> QualityReport:
    keys = [c for c in ("symbol", "date", "event_date") if c in frame.columns]
    outcomes = [_outcome(item) for item in _run_suite(suite_name, frame, expectations, keys=keys)]
    return QualityReport(suite=suite_name, rows=len(frame), outcomes=tuple(outcomes))


def _plain(value: Any) -> Any:
    if isinstance(value, float) and np.isnan(value):
        return None  # a missing key (a symbol, say) reads as null in the check's JSON
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (pd.Timestamp, dt.date)):
        return str(value)[:10]
    if isinstance(value, np.generic):
        return value.item()
    return value


def trimmed_symbols(symbols: pd.Series) -> pd.Categorical:
    """The symbol column as a categorical of trimmed symbols (" AAA " is AAA, as the lake stores
    it), trimming each distinct symbol once rather than each bar's. Symbols that are equal once
    trimmed share one category, so their bars on one date are duplicates; a missing symbol stays
    missing."""
    values = symbols.array if isinstance(symbols.dtype, pd.CategoricalDtype) else pd.Categorical(symbols)
    names = pd.Index(values.categories.astype(str))
    trimmed = names.str.strip()
    if trimmed.equals(names) and trimmed.equals(values.categories):
        return values  # every symbol already trimmed: the column as it is
    to_trimmed, categories = pd.factorize(trimmed)
    # code -1 (missing) takes the appended last slot, -1
    return pd.Categorical.from_codes(np.append(to_trimmed, -1)[values.codes], categories=categories)


def check_raw_bars(bars: pd.DataFrame, as_of: dt.date) -> QualityReport:
    """Expectations on raw bars; `as_of` is the exchange date after which a bar is 'future'.
    Symbols are judged trimmed, as the lake stores them. A rule on the symbol alone (ticker
    pattern, length) is judged once per distinct symbol; its unexpected count is that of the
    bars of the failing symbols, each named by its first bar (symbol, date)."""
    _, gxe = _gx()
    symbols = trimmed_symbols(bars["symbol"])
    dates = pd.to_datetime(bars["date"])
    sessions = market_calendar.sessions(dates.min(), dates.max()) if len(bars) and dates.notna().any() else pd.DatetimeIndex([])
    # the fractional part of each volume, which must be 0 (GE has no whole-number expectation)
    frame = bars.assign(symbol=symbols, volume_fraction=bars["volume"] - np.floor(bars["volume"]))
    expectations: list[Any] = [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in bars.columns]
    expectations += [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True) for c in ("open", "high", "low", "close")]
    expectations += [
        gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0, max_value=rules.MAX_VOLUME),
        gxe.ExpectColumnValuesToBeBetween(column="volume_fraction", min_value=0, max_value=0),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="open", column_B="low", or_equal=True),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="close", column_B="low", or_equal=True),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="close", or_equal=True),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="open", or_equal=True),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["symbol", "date"]),
        gxe.ExpectColumnValuesToBeInSet(column="date", value_set={"$PARAMETER": "xnys_sessions"}),
        gxe.ExpectColumnValuesToBeBetween(column="date", max_value=pd.Timestamp(as_of)),
    ]
    results = _run_suite("raw_bars", frame, expectations, keys=["symbol", "date"],
                         parameters={"xnys_sessions": list(sessions)})
    outcomes = [_outcome(item) for item in results] + _symbol_outcomes(symbols, dates, gxe)
    return QualityReport(suite="raw_bars", rows=len(bars), outcomes=tuple(outcomes))


def check_raw_bars_table(bars: pa.Table, as_of: dt.date) -> QualityReport:
    """`check_raw_bars` of an Arrow table of `schema.BAR_COLUMNS`: read as a frame of their
    types (dates as datetime64[ns]), its columns as Arrow holds them, not copied into one block."""
    frame = schema.normalize_bars(bars.to_pandas(date_as_object=False, coerce_temporal_nanoseconds=True, split_blocks=True))
    return check_raw_bars(frame, as_of)


def _symbol_outcomes(symbols: pd.Categorical, dates: pd.Series, gxe: Any) -> list[ExpectationOutcome]:
    """The ticker pattern and length judged on the distinct symbols that have bars, reported in
    bars: each failing symbol's bar count is summed; the first five failing symbols by name are
    each named by their first bar."""
    codes = symbols.codes
    bar_counts = np.bincount(codes[codes >= 0], minlength=len(symbols.categories))
    held = np.flatnonzero(bar_counts)
    distinct = pd.DataFrame({"symbol": pd.Series(symbols.categories[held], dtype=object)})
    expectations = [
        gxe.ExpectColumnValuesToMatchRegex(column="symbol", regex=rf"^(?:{rules.TICKER_PATTERN})\Z"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="symbol", min_value=1, max_value=rules.MAX_SYMBOL_LENGTH),
    ]
    outcomes = []
    for item in _run_suite("raw_bar_symbols", distinct, expectations, every_row=True):
        failing = held[np.asarray(item.result.get("unexpected_index_list") or [], dtype=np.int64)]
        failing = failing[np.argsort(np.asarray(symbols.categories[failing], dtype=object), kind="stable")]  # by name
        if item.success or not len(failing):
            outcomes.append(_outcome(item))  # passed, or failed without rows (e.g. GE raised): as GE says
            continue
        first_bars = [{"symbol": symbols.categories[code], "date": _plain(dates[codes == code].min())} for code in failing[:5]]
        outcomes.append(ExpectationOutcome(expectation=item.expectation_config.type, column="symbol", success=False,
                                           unexpected_count=int(bar_counts[failing].sum()), examples=first_bars))
    return outcomes


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
