"""Lake assets: raw bars -> corporate actions -> lake candidate (checked) -> lake version.

One run ingests one range of XNYS sessions, named in `raw_daily_bars`'s config; without one, the
run ingests every session the lake lacks (the whole history into an empty lake), so a ten-year
backfill is one run that Dagster plans once. The nightly schedule asks for that evening's session.
Which sessions the lake holds is on `lake_version` (`sessions`, `sessions_held`).
"""

import datetime as dt

import dagster as dg
from pydantic import Field

from kobe_pipelines.defs.env_resources import AlertsResource
from kobe_pipelines.defs.lake import actions_ahead
from kobe_pipelines.defs.lake.checks import (
    RAW_BARS_CHECK, SPLIT_JUMPS_CHECK, TOTAL_JUMPS_CHECK, added_event_returns, candidate_check_specs, check_result,
    raw_bars_check_specs,
)
from kobe_pipelines.defs.lake.sessions import SessionRange, held_sessions, sessions_to_ingest
from kobe_pipelines.defs.resources import LakeResource, MarketDataResource

GROUP = "lake"
IN_MEMORY = "mem_io_manager"  # the candidate is handed on within the run, never pickled
SIGNALS = dg.AssetKey("signals")  # scored after the lake steps in a refreeze run


class SessionsConfig(dg.Config):
    """The sessions a refreeze ingests (exchange dates, YYYY-MM-DD); empty means every session the
    lake lacks: from the one after its last session (the history start for an empty lake)
    through the last completed session."""

    first: str | None = Field(default=None, description="First session; empty: the one after the lake's last session")
    last: str | None = Field(default=None, description="Last session; empty: the last completed XNYS session")


def sessions_run_config(span: SessionRange) -> dict:
    """Run config that makes a refreeze ingest exactly `span`."""
    return {"ops": {"raw_daily_bars": {"config": {"first": str(span.first), "last": str(span.last)}}}}


def last_session_held(store) -> dt.date | None:
    """The last session of the lake's current version (None for an empty lake)."""
    version_id = store.current_version_id()
    end = store.version(version_id).end_date if version_id else None
    return dt.date.fromisoformat(end) if end else None


def _alert_failed_check(alerts: AlertsResource, asset: str, scope: str, report) -> None:
    """A failed data check blocks the freeze; a person hears about it at once."""
    from kobe_pipelines.alerts import Alert, AlertKind, Severity

    alerter = alerts.alerter()
    alerter.send(Alert(kind=AlertKind.DATA_CHECK_FAILED, subject=f"{asset} failed its checks ({scope}): nothing frozen",
                       body=report.summary(), severity=Severity.CRITICAL, key=f"data_check_failed:{asset}"))
    alerter.flush()


def _distinct_count(column) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc

    return len(pc.unique(pc.unique(column).cast(pa.string()).drop_null())) if len(column) else 0


def _preview(frame, rows: int = 5) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False) if len(frame) else "_empty_")


@dg.asset(group_name=GROUP, check_specs=raw_bars_check_specs, kinds={"parquet"})
def raw_daily_bars(context: dg.AssetExecutionContext, config: SessionsConfig, market_data: MarketDataResource,
                   lake: LakeResource, alerts: AlertsResource):
    """Raw (unadjusted) daily bars of the sessions this run ingests, checked and staged for the
    freeze. A batch that fails its blocking check is not staged and nothing downstream runs. The
    quality worker starts first, so that it loads its checks while the step reads the lake and
    fetches; in a run that scores too, the scoring libraries load on a thread meanwhile
    (`ml.preload`)."""
    from kobe_pipelines.data.quality_worker import close_shared_worker, start_shared_worker

    start_shared_worker()
    from kobe_pipelines import market_calendar
    from kobe_pipelines.data import schema
    from kobe_pipelines.data.providers.base import bars_for_freeze
    from kobe_pipelines.data.quality import QualityReport
    from kobe_pipelines.lake.checked_ingest import fetch_check_and_stage
    from kobe_pipelines.ml import preload

    if SIGNALS in context.job_def.asset_layer.selected_asset_keys:
        preload.start()
    store = lake.open()
    held = last_session_held(store)
    span = sessions_to_ingest(held, market_data.settings().history_start, config.first, config.last)
    if span is None:
        close_shared_worker()  # nothing to check
        report = QualityReport("raw_bars", 0, ())
        yield dg.MaterializeResult(
            metadata={"sessions": 0, "rows": 0, "staged": False, "note": f"the lake holds every session through {held}"},
            check_results=[check_result(RAW_BARS_CHECK, "raw_daily_bars", report)],
        )
        return
    provider = market_data.build()

    def while_checked(table) -> dict:
        # the actions corporate_actions asks for next, once this batch is staged
        staged_after = sorted({*store.staged_labels(), span.label}) if table.num_rows else store.staged_labels()
        actions_ahead.fetch_ahead(context.run_id, provider, actions_ahead.actions_window(store, staged_after, held))
        return _bars_metadata(table)

    batch = fetch_check_and_stage(
        store, span.label, span.first, span.last,
        fetch=lambda first, last: schema.bars_table(bars_for_freeze(provider, first, last)),
        as_of=market_calendar.last_completed_session().date(),
        describe=while_checked,
    )
    table, report = batch.table, batch.report
    if not report.success:
        _alert_failed_check(alerts, "raw_daily_bars", str(span), report)
    yield dg.MaterializeResult(
        metadata={"sessions_asked": str(span), **batch.description, "staged": bool(report.success and table.num_rows)},
        check_results=[check_result(RAW_BARS_CHECK, "raw_daily_bars", report)],
    )


def _bars_metadata(table) -> dict:
    """What the UI shows of a fetched batch: its sessions, rows, symbols, dates and first rows."""
    import pyarrow.compute as pc

    bounds = pc.min_max(table.column("date")).as_py()
    return {
        "sessions": _distinct_count(table.column("date")),
        "rows": table.num_rows,
        "symbols": _distinct_count(table.column("symbol")),
        "first_date": str(bounds["min"] or ""),
        "last_date": str(bounds["max"] or ""),
        "preview": _preview(table.slice(0, 5).to_pandas()),
    }


@dg.asset(group_name=GROUP, deps=[raw_daily_bars], kinds={"parquet"})
def corporate_actions(context: dg.AssetExecutionContext, market_data: MarketDataResource,
                      lake: LakeResource) -> dg.MaterializeResult:
    """Splits and cash dividends from the provider, staged for the freeze: from the current
    version's last date minus 30 days (late-announced actions are caught again; from the first
    staged session when the lake is empty) through the last staged session. In a run that
    ingested bars, they were fetched while the bars were checked (`actions_ahead`)."""
    store = lake.open()
    window = actions_ahead.actions_window(store, store.staged_labels(), last_session_held(store))
    if window is None:
        return dg.MaterializeResult(metadata={"splits": 0, "dividends": 0, "note": "nothing staged and the lake is empty"})
    ahead = actions_ahead.take(context.run_id, window)
    splits, dividends = ahead if ahead is not None else actions_ahead.fetch(market_data.build(), window)
    store.stage_actions(splits, dividends)
    return dg.MaterializeResult(
        metadata={
            "fetched_from": window.start,
            "fetched_to": window.end,
            "fetched_while_bars_were_checked": ahead is not None,
            "splits": len(splits),
            "dividends": len(dividends),
            "splits_preview": _preview(splits),
            "dividends_preview": _preview(dividends),
        }
    )


@dg.asset(group_name=GROUP, deps=[raw_daily_bars, corporate_actions], check_specs=candidate_check_specs,
          kinds={"duckdb"}, io_manager_key=IN_MEMORY)
def lake_candidate(lake: LakeResource, market_data: MarketDataResource, alerts: AlertsResource):
    """The next lake version, prepared but not published: the staged bars validated and stored,
    the actions of the symbols and sessions it holds applied (others kept aside and counted), the
    factor tables derived. Its blocking checks report, for the sessions of the events it adds, the
    split-adjusted and total-return close-to-close returns that the prepare itself judged
    (`Candidate.event_jumps`): no unexplained jump."""
    from kobe_pipelines.data.quality import DEFAULT_MAX_ABS_LOG_RETURN
    from kobe_pipelines.data.quality_worker import check_adjusted_jumps_in_worker
    from kobe_pipelines.defs.lake.keep_aside import actions_in_scope
    from kobe_pipelines.defs.lake.plots import split_plot_markdown

    store = lake.open()
    labels = store.staged_labels()
    bars = store.staged_bars_table(labels)
    splits, dividends = store.staged_actions()
    scope = _held_scope(store, bars)
    actions = actions_in_scope(splits, dividends, scope) if scope else None
    candidate = store.prepare(
        bars,
        actions.splits if actions else splits,
        actions.dividends if actions else dividends,
        provider=market_data.settings().provider,
        dividend_convention=lake.settings().dividend_convention,
        notes={"staged_labels": labels, "kept_aside_actions": actions.kept_aside_count if actions else 0},
    )
    events = candidate.events
    added = _added_events(store, candidate)
    returns = added_event_returns(candidate, added)
    reports = check_adjusted_jumps_in_worker(returns, DEFAULT_MAX_ABS_LOG_RETURN)
    for view, report in reports.items():
        if not report.success:
            _alert_failed_check(alerts, "lake_candidate", f"{view} view", report)
    kinds = events["kind"].value_counts().to_dict() if "kind" in events.columns else {}
    yield dg.Output(
        candidate,
        metadata={
            "new_raw_rows": candidate.new_rows,
            "events": len(events),
            "events_added": len(added),
            "events_by_kind": dg.MetadataValue.json({str(k): int(v) for k, v in kinds.items()}),
            "kept_aside_actions": actions.kept_aside_count if actions else 0,
            "kept_aside_preview": _preview(actions.kept_aside if actions else splits.head(0), 10),
            "dividend_convention": candidate.dividend_convention,
            "content_hash": candidate.content_hash,
            "raw_vs_adjusted_around_a_split": split_plot_markdown(store, candidate, added),
        },
    )
    yield check_result(SPLIT_JUMPS_CHECK, "lake_candidate", reports["split"])
    yield check_result(TOTAL_JUMPS_CHECK, "lake_candidate", reports["total"])


def _held_scope(store, staged_bars):
    """The symbols and sessions the candidate will hold: the current version's and the staged ones."""
    from kobe_pipelines.defs.lake.keep_aside import HeldScope
    import pyarrow.compute as pc

    version_id = store.current_version_id()
    symbols = set(pc.unique(staged_bars.column("symbol")).cast("string").to_pylist()) if staged_bars.num_rows else set()
    firsts, lasts = [], []
    if staged_bars.num_rows:
        bounds = pc.min_max(staged_bars.column("date")).as_py()
        firsts.append(bounds["min"])
        lasts.append(bounds["max"])
    if version_id:
        manifest = store.version(version_id)
        symbols |= set(store.query("SELECT DISTINCT symbol FROM bars_raw", version_id)["symbol"])
        firsts.append(dt.date.fromisoformat(manifest.start_date))
        lasts.append(dt.date.fromisoformat(manifest.end_date))
    if not firsts:
        return None
    return HeldScope(frozenset(symbols), min(firsts), max(lasts))


def _added_events(store, candidate):
    """The candidate's events that its base version lacks (all of them for a first version): the
    only ones whose adjusted returns can have changed."""
    events = candidate.events
    if candidate.base_version_id is None or events.empty:
        return events
    before = store.events(candidate.base_version_id)
    merged = events.merge(before.drop_duplicates(), how="left", indicator=True)
    return events.loc[(merged["_merge"] == "left_only").to_numpy()].reset_index(drop=True)


@dg.asset(group_name=GROUP, kinds={"duckdb", "parquet"})
def lake_version(context: dg.AssetExecutionContext, lake_candidate, lake: LakeResource) -> dg.Output[str]:
    """Publishes the candidate as the current lake version (atomic) and clears the staged inputs.
    Identical content makes no new version. Its value is the version id; its metadata lists the
    sessions the version holds."""
    store = lake.open()
    result = store.publish(lake_candidate)
    store.clear_staged(lake_candidate.notes.get("staged_labels", []))
    manifest = result.version
    dates = store.query("SELECT DISTINCT date FROM bars_raw ORDER BY date", manifest.version_id)["date"]
    held = held_sessions([d.date() for d in dates])
    context.log.info(f"lake version {manifest.version_id}: {held.count} sessions {manifest.start_date}..{manifest.end_date}")
    return dg.Output(
        manifest.version_id,
        metadata={
            "version_id": manifest.version_id,
            "content_hash": manifest.content_hash,
            "new_version": result.created,
            "rows": manifest.row_counts.get("bars", 0),
            "sessions": held.count,
            "missing_sessions": held.missing,
            "sessions_held": dg.MetadataValue.md(held.markdown()),
            "first_date": manifest.start_date or "",
            "last_date": manifest.end_date or "",
            "dividend_convention": manifest.dividend_convention,
            "catalog": dg.MetadataValue.path(str(store.catalog_path)),
            "query": dg.MetadataValue.md(f"`kobe lake query \"SELECT * FROM bars LIMIT 5\"` (version {manifest.version_id})"),
        },
    )


lake_assets = [raw_daily_bars, corporate_actions, lake_candidate, lake_version]
