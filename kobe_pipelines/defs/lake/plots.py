"""A small plot for the UI: raw against adjusted closes around one split of a candidate version."""

from __future__ import annotations

import base64
import io

import dagster as dg

from kobe_pipelines.lake import Candidate, Lake


def split_plot_markdown(store: Lake, candidate: Candidate, window_days: int = 40) -> dg.MetadataValue:
    events = candidate.events
    if events.empty or "kind" not in events.columns or not (events["kind"] == "split").any():
        return dg.MetadataValue.md("_no split in this version_")
    event = events.loc[events["kind"] == "split"].iloc[-1]
    import duckdb
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kobe_pipelines.lake import catalog

    with duckdb.connect() as con:
        catalog.create_views(con, store.root, candidate.entries, "main")
        frame = con.execute(
            "SELECT r.date, r.close AS raw, s.close AS split_adjusted, t.close AS total_return "
            "FROM bars_raw r JOIN bars_split_adjusted s USING (symbol, date) JOIN bars t USING (symbol, date) "
            "WHERE symbol = ? AND r.date BETWEEN ?::DATE - ? AND ?::DATE + ? ORDER BY r.date",
            [event["symbol"], event["event_date"].date(), window_days, event["event_date"].date(), window_days],
        ).df()
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=90)
    for column in ("raw", "split_adjusted", "total_return"):
        ax.plot(frame["date"], frame[column], label=column.replace("_", " "))
    ax.axvline(event["event_date"], color="grey", linestyle=":", label="split")
    ax.set_title(f"{event['symbol']} around its split on {event['event_date'].date()}")
    ax.set_ylabel("close, USD")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"![raw vs adjusted](data:image/png;base64,{encoded})")
