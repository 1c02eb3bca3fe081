"""Lake assets: raw bars -> corporate actions -> adjustment factors -> adjusted bars -> lake version."""


import dagster as dg
import pandas as pd

from kobe_pipelines import market_calendar
from kobe_pipelines.data.quality import check_adjusted_jumps, check_raw_bars
from kobe_pipelines.defs.lake.checks import (
    RAW_BARS_CHECK, SPLIT_JUMPS_CHECK, TOTAL_JUMPS_CHECK, adjusted_bars_check_specs, check_result, raw_bars_check_specs,
)
from kobe_pipelines.defs.lake.plots import split_plot_markdown
from kobe_pipelines.defs.partitions import xnys_daily_partitions
from kobe_pipelines.alerts import Alert, AlertKind, Severity
from kobe_pipelines.defs.env_resources import AlertsResource
from kobe_pipelines.defs.resources import LakeResource, MarketDataResource
from kobe_pipelines.lake import Candidate

GROUP = "lake"


def _alert_failed_check(alerts: AlertsResource, asset: str, scope: str, report) -> None:
    """A failed data check blocks the freeze; a person hears about it at once."""
    alerter = alerts.alerter()
    alerter.send(Alert(kind=AlertKind.DATA_CHECK_FAILED, subject=f"{asset} failed its checks ({scope}): nothing frozen",
                       body=report.summary(), severity=Severity.CRITICAL, key=f"data_check_failed:{asset}"))
    alerter.flush()


def _preview(frame: pd.DataFrame, rows: int = 5) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False) if not frame.empty else "_empty_")


def _bars_metadata(bars: pd.DataFrame) -> dict:
    return {
        "rows": len(bars),
        "symbols": int(bars["symbol"].nunique()),
        "first_date": str(bars["date"].min().date()) if len(bars) else "",
        "last_date": str(bars["date"].max().date()) if len(bars) else "",
        "preview": _preview(bars),
    }


@dg.asset(
    group_name=GROUP,
    partitions_def=xnys_daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=raw_bars_check_specs,
    kinds={"parquet", "polygon"},
)
def raw_daily_bars(
    context: dg.AssetExecutionContext, market_data: MarketDataResource, lake: LakeResource, alerts: AlertsResource
):
    """Raw (unadjusted) daily bars of the sessions in the partition range, staged for the next freeze.
    A batch that fails its blocking check is not staged and nothing downstream runs."""
    first, last = context.partition_key_range.start, context.partition_key_range.end
    bars = market_data.build().daily_bars(first, last)
    report = check_raw_bars(bars, as_of=market_calendar.last_completed_session().date())
    if report.success and not bars.empty:
        lake.open().stage_bars(f"{first}_{last}", bars)
    elif not report.success:
        _alert_failed_check(alerts, "raw_daily_bars", f"{first}..{last}", report)
    yield dg.MaterializeResult(
        metadata={**_bars_metadata(bars), "staged": report.success},
        check_results=[check_result(RAW_BARS_CHECK, "raw_daily_bars", report)],
    )


@dg.asset(group_name=GROUP, deps=[raw_daily_bars], kinds={"parquet"})
def corporate_actions(market_data: MarketDataResource, lake: LakeResource) -> dg.MaterializeResult:
    """Splits and cash dividends from the provider, staged for the next freeze.

    Fetched from the current version's last date minus 30 days (the whole history when the
    lake is empty) to the last completed session; stored actions are kept and merged."""
    store = lake.open()
    end = market_calendar.last_completed_session().date()
    version_id = store.current_version_id()
    start = store.actions_fetch_start(market_data.history_start)
    provider = market_data.build()
    splits, dividends = provider.splits(start, end), provider.dividends(start, end)
    dropped = 0
    if market_data.provider == "polygon":
        # Polygon lists the actions of the whole market; keep those of the symbols we ingest (an
        # unknown symbol would, rightly, stop the freeze). A user's own files get no such pass.
        universe = set(store.staged_bars()["symbol"])
        if version_id:
            universe |= set(store.query("SELECT DISTINCT symbol FROM bars_raw")["symbol"])
        keep_s, keep_d = splits["symbol"].isin(universe), dividends["symbol"].isin(universe)
        dropped = int((~keep_s).sum() + (~keep_d).sum())
        splits, dividends = splits.loc[keep_s], dividends.loc[keep_d]
    store.stage_actions(splits, dividends)
    return dg.MaterializeResult(
        metadata={
            "fetched_from": start,
            "fetched_to": str(end),
            "splits": len(splits),
            "dividends": len(dividends),
            "dropped_outside_universe": dropped,
            "splits_preview": _preview(splits),
            "dividends_preview": _preview(dividends),
        }
    )


@dg.asset(group_name=GROUP, deps=[raw_daily_bars, corporate_actions], kinds={"duckdb"})
def adjustment_factors(market_data: MarketDataResource, lake: LakeResource) -> dg.Output[Candidate]:
    """Validates the staged bars and actions and derives the adjustment factor table: a candidate
    lake version whose files exist but which nobody can see until `lake_version` publishes it."""
    store = lake.open()
    labels = store.staged_labels()
    splits, dividends = store.staged_actions()
    candidate = store.prepare(
        store.staged_bars_table(labels),
        splits,
        dividends,
        provider=market_data.provider,
        dividend_convention=lake.dividend_convention,
        notes={"staged_labels": labels},
    )
    events = candidate.events
    kinds = events["kind"].value_counts().to_dict() if "kind" in events.columns else {}
    return dg.Output(
        candidate,
        metadata={
            "new_raw_rows": candidate.new_rows,
            "events": len(events),
            "events_by_kind": dg.MetadataValue.json({str(k): int(v) for k, v in kinds.items()}),
            "dividend_convention": candidate.dividend_convention,
            "content_hash": candidate.content_hash,
            "events_preview": _preview(events, 10),
        },
    )


@dg.asset(group_name=GROUP, check_specs=adjusted_bars_check_specs, kinds={"duckdb"})
def adjusted_bars(adjustment_factors: Candidate, lake: LakeResource, alerts: AlertsResource):
    """Split-adjusted and total-return views of the candidate (raw x factor), checked for jumps
    left unexplained at split and ex-dates."""
    store = lake.open()
    returns = store.event_returns(adjustment_factors.entries, adjustment_factors.events)
    reports = {view: check_adjusted_jumps(frame, view) for view, frame in returns.items()}
    for view, report in reports.items():
        if not report.success:
            _alert_failed_check(alerts, "adjusted_bars", f"{view} view", report)
    yield dg.MaterializeResult(
        metadata={
            "events_checked": len(returns["total"]),
            "raw_vs_adjusted_around_a_split": split_plot_markdown(store, adjustment_factors),
        },
        check_results=[
            check_result(SPLIT_JUMPS_CHECK, "adjusted_bars", reports["split"]),
            check_result(TOTAL_JUMPS_CHECK, "adjusted_bars", reports["total"]),
        ],
    )


@dg.asset(group_name=GROUP, deps=[adjusted_bars], kinds={"duckdb", "parquet"})
def lake_version(adjustment_factors: Candidate, lake: LakeResource) -> dg.Output[str]:
    """Publishes the candidate as the current lake version (atomic) and clears the staged inputs.
    Identical content makes no new version. Its value is the version id."""
    store = lake.open()
    result = store.publish(adjustment_factors)
    store.clear_staged(adjustment_factors.notes.get("staged_labels", []))
    manifest = result.version
    return dg.Output(
        manifest.version_id,
        metadata={
            "version_id": manifest.version_id,
            "content_hash": manifest.content_hash,
            "new_version": result.created,
            "rows": manifest.row_counts.get("bars", 0),
            "first_date": manifest.start_date or "",
            "last_date": manifest.end_date or "",
            "dividend_convention": manifest.dividend_convention,
            "catalog": dg.MetadataValue.path(str(store.catalog_path)),
            "query": dg.MetadataValue.md(f"`kobe lake query \"SELECT * FROM bars LIMIT 5\"` (version {manifest.version_id})"),
        },
    )


lake_assets = [raw_daily_bars, corporate_actions, adjustment_factors, adjusted_bars, lake_version]
