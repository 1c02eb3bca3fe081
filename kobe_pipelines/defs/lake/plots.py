"""A small plot for the UI: raw against adjusted closes around one split of a candidate version."""

from __future__ import annotations

import dagster as dg

from kobe_pipelines.defs.plots import CYCLE, Series, chart_markdown


def split_plot_markdown(store, candidate, events, window_days: int = 40) -> dg.MetadataValue:
    """Raw, split-adjusted and total-return closes of one symbol around the latest split among
    `events` (the events the candidate adds; its latest split overall when they hold none)."""
    chosen = _latest_split(events)
    if chosen is None:
        chosen = _latest_split(candidate.events)
    if chosen is None:
        return dg.MetadataValue.md("_no split in this version_")
    import duckdb

    from kobe_pipelines.lake import catalog

    day = chosen["event_date"].date()
    with duckdb.connect() as con:
        catalog.create_views(con, store.root, candidate.entries, "main")
        frame = con.execute(
            "SELECT r.date, r.close AS raw, s.close AS split_adjusted, t.close AS total_return "
            "FROM bars_raw r JOIN bars_split_adjusted s USING (symbol, date) JOIN bars t USING (symbol, date) "
            "WHERE symbol = ? AND r.date BETWEEN ?::DATE - ? AND ?::DATE + ? ORDER BY r.date",
            [chosen["symbol"], day, window_days, day, window_days],
        ).df()
    x = [d.toordinal() for d in frame["date"]]
    series = [Series(name.replace("_", " "), x, frame[name].tolist(), color=CYCLE[i])
              for i, name in enumerate(("raw", "split_adjusted", "total_return"))]
    return chart_markdown(f"{chosen['symbol']} around its split on {day}", series,
                          f"{frame['date'].min().date()}..{frame['date'].max().date()}")


def _latest_split(events):
    if events is None or events.empty or "kind" not in events.columns:
        return None
    splits = events.loc[events["kind"] == "split"]
    return None if splits.empty else splits.sort_values("event_date").iloc[-1]
